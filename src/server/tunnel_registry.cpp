#include "server/tunnel_registry.h"

#include <algorithm>

#include "server/tunnel.h"

namespace porthole::server {

namespace {

template <class Set>
void erase(Set& set, std::string_view key) {
  if (auto it = set.find(key); it != set.end()) {
    set.erase(it);
  }
}

}  // namespace

claim_result in_memory_registry::claim(std::string_view name, std::string_view scheme,
                                       std::string_view client_id) {
  const auto now = clock::now();
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    it = entries_.emplace(std::string(name), entry{std::string(client_id)}).first;
  } else if (it->second.expired(now)) {
    it->second = entry{std::string(client_id)};
  } else if (it->second.client_id != client_id) {
    return it->second.live.empty() ? claim_result::held_elsewhere : claim_result::live_elsewhere;
  }
  entry& e = it->second;
  e.live.emplace(scheme);
  erase(e.held, scheme);
  e.held_until.reset();
  return claim_result::claimed;
}

void in_memory_registry::release(std::string_view name, std::string_view scheme,
                                 std::string_view client_id, clock::time_point hold_until) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.client_id != client_id) {
    return;
  }
  entry& e = it->second;
  const bool hold = hold_until > clock::now();
  erase(e.live, scheme);
  if (hold) {
    e.held.emplace(scheme);
  } else {
    erase(e.held, scheme);
  }
  if (!e.live.empty()) {
    return;
  }
  if (hold) {
    e.held_until = hold_until;
  } else {
    entries_.erase(it);  // given up: nothing of it is held any more
  }
}

std::vector<tunnel_registry::held_name> in_memory_registry::held_by(std::string_view client_id) {
  const auto now = clock::now();
  std::vector<held_name> names;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expired(now)) {
      it = entries_.erase(it);
      continue;
    }
    const entry& e = it->second;
    if (e.client_id == client_id && !e.held.empty()) {
      names.push_back({it->first, {e.held.begin(), e.held.end()}});
    }
    ++it;
  }
  return names;
}

bool in_memory_registry::is_held(std::string_view name) {
  auto it = entries_.find(name);
  return it != entries_.end() && it->second.live.empty() && it->second.held_until &&
         !it->second.expired(clock::now());
}

bool in_memory_registry::is_free(std::string_view name) {
  auto it = entries_.find(name);
  return it == entries_.end() || it->second.expired(clock::now());
}

namespace {

std::string fold(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
  });
  return out;
}

bool matches(std::string_view host, std::string_view pattern) {
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".suffix"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return host == pattern;
}

}  // namespace

host_choice choose_subdomain(std::string_view subdomain, const hostname_policy& policy) {
  const std::string sub = fold(subdomain);
  if (sub.find('.') != std::string::npos) {
    return {"", "Invalid subdomain '" + std::string(subdomain) +
                    "': a subdomain is one DNS label, without dots."};
  }
  if (!valid_subdomain(sub)) {
    return {"", "Invalid subdomain '" + std::string(subdomain) +
                    "': use 1 to 63 letters, digits and '-', not starting or ending with '-'."};
  }
  std::string host = sub + "." + policy.domain;
  if (host.size() > 253) {
    return {"", "Invalid subdomain '" + std::string(subdomain) + "': " + host +
                    " is longer than 253 characters."};
  }
  return {std::move(host), ""};
}

host_choice choose_hostname(std::string_view hostname, const hostname_policy& policy) {
  std::string host = fold(hostname);
  if (!valid_hostname(host)) {
    return {"", "Invalid hostname '" + std::string(hostname) +
                    "': use DNS labels of 1 to 63 letters, digits and '-', separated by dots, "
                    "at most 253 characters."};
  }
  if (host == policy.domain) {
    return {"", "Hostname " + host +
                    " is this server's own name and cannot be a tunnel; ask for a subdomain "
                    "of it instead."};
  }
  const std::string under = "." + policy.domain;
  if (host.ends_with(under)) {
    const std::string_view label = std::string_view(host).substr(0, host.size() - under.size());
    if (label.find('.') == std::string_view::npos) {
      return {std::move(host), ""};
    }
  }
  const bool allowed =
      policy.allow_any || std::any_of(policy.allowed.begin(), policy.allowed.end(),
                                      [&](const std::string& p) { return matches(host, p); });
  if (!allowed) {
    if (host.ends_with(under)) {
      return {"", "Hostname " + host + " is more than one label below " + policy.domain +
                      "; this server gives out <name>." + policy.domain + " only."};
    }
    return {"", "Hostname " + host + " is outside this server's domain " + policy.domain +
                    "; ask for a subdomain, or ask the operator to allow it (--allow-hostname)."};
  }
  return {std::move(host), ""};
}

}  // namespace porthole::server
