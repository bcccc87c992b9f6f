#include "server/tunnel_registry.h"

namespace porthole::server {

bool in_memory_registry::claim(std::string_view url, std::string_view client_id) {
  const auto now = clock::now();
  auto it = entries_.find(url);
  if (it == entries_.end()) {
    entries_.emplace(std::string(url), entry{std::string(client_id), std::nullopt});
    return true;
  }
  entry& e = it->second;
  if (e.client_id == client_id || e.expired(now)) {
    e.client_id = std::string(client_id);
    e.held_until.reset();
    return true;
  }
  return false;
}

void in_memory_registry::release(std::string_view url, std::string_view client_id,
                                 clock::time_point hold_until) {
  auto it = entries_.find(url);
  if (it == entries_.end() || it->second.client_id != client_id) {
    return;
  }
  if (hold_until <= clock::now()) {
    entries_.erase(it);
  } else {
    it->second.held_until = hold_until;
  }
}

std::vector<std::string> in_memory_registry::held_by(std::string_view client_id) {
  const auto now = clock::now();
  std::vector<std::string> urls;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expired(now)) {
      it = entries_.erase(it);
      continue;
    }
    if (it->second.client_id == client_id && it->second.held_until) {
      urls.push_back(it->first);
    }
    ++it;
  }
  return urls;
}

bool in_memory_registry::is_held(std::string_view url) {
  auto it = entries_.find(url);
  return it != entries_.end() && it->second.held_until && !it->second.expired(clock::now());
}

}  // namespace porthole::server
