#include "server/hostname_policy.h"

#include <algorithm>

#include "server/tunnel.h"

namespace porthole::server {

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
