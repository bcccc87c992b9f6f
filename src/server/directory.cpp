#include "server/directory.h"

#include <algorithm>

namespace porthole::server {

local_directory::local_directory(std::function<clock::time_point()> now) : now_(std::move(now)) {}

net::asio::awaitable<claim_answer> local_directory::claim(
    std::string name, claimant who, std::vector<std::shared_ptr<tunnel>> tunnels) {
  co_return claim_now(name, who, tunnels);
}

claim_answer local_directory::claim_now(std::string_view name, const claimant& who,
                                        const std::vector<std::shared_ptr<tunnel>>& tunnels) {
  forget_expired();
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    it = entries_.emplace(std::string(name), entry{.owner = who}).first;
  } else if (expired(it->second)) {
    it->second = entry{.owner = who};
  } else if (it->second.owner.client_id != who.client_id) {
    return {it->second.live.empty() ? claim_outcome::held_elsewhere : claim_outcome::live_elsewhere,
            0, ""};
  }
  entry& e = it->second;
  for (const auto& t : tunnels) {
    e.live[t->protocol] = t;
    if (auto h = e.held.find(t->protocol); h != e.held.end()) {
      e.held.erase(h);
    }
  }
  e.held_until.reset();
  e.revision = ++revision_;
  return {claim_outcome::won, e.revision, ""};
}

void local_directory::forget_expired() {
  const auto now = now_();
  if (now < next_sweep_) {
    return;
  }
  next_sweep_ = now + std::chrono::seconds(1);
  std::erase_if(entries_, [&](const auto& kv) { return expired(kv.second); });
}

void local_directory::release(const tunnel& t, clock::time_point hold_until) {
  auto it = entries_.find(t.routing_name());
  if (it == entries_.end()) {
    return;
  }
  entry& e = it->second;
  auto live = e.live.find(t.protocol);
  if (live == e.live.end() || live->second.get() != &t) {
    return;  // not routed to this tunnel: a newer one of the client replaced it
  }
  e.live.erase(live);
  const bool hold = hold_until > now_();
  if (hold) {
    e.held.emplace(t.protocol);
  } else if (auto h = e.held.find(t.protocol); h != e.held.end()) {
    e.held.erase(h);
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

route local_directory::find(std::string_view scheme, std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || expired(it->second)) {
    return {};
  }
  const entry& e = it->second;
  if (auto live = e.live.find(scheme); live != e.live.end()) {
    return {live->second, e.revision, std::nullopt, false, false};
  }
  return {nullptr, 0, std::nullopt, e.live.empty() && e.held_until.has_value(), false};
}

std::vector<held_name> local_directory::held_by(std::string_view client_id) const {
  std::vector<held_name> names;
  for (const auto& [name, e] : entries_) {
    if (!expired(e) && e.owner.client_id == client_id && !e.held.empty()) {
      names.push_back({name, {e.held.begin(), e.held.end()}});
    }
  }
  return names;
}

bool local_directory::is_free(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() || expired(it->second);
}

std::vector<std::shared_ptr<tunnel>> local_directory::local_tunnels() const {
  std::vector<std::shared_ptr<tunnel>> out;
  for (const auto& [name, e] : entries_) {
    for (const auto& [scheme, t] : e.live) {
      out.push_back(t);
    }
  }
  return out;
}

}  // namespace porthole::server
