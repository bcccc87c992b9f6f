#pragma once
// A directory whose claims the test answers: each claim() is recorded and
// answered from a script, at once or when the test lets it through, so the
// server's claim logic is tested without a cluster store and its time-outs.

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/event.h"
#include "server/directory.h"

namespace porthole::testing {

class fake_directory final : public server::directory {
 public:
  /// One scripted answer to a claim.
  struct answer {
    server::claim_outcome outcome = server::claim_outcome::won;
    std::string error{};  ///< why, with unavailable
    bool wait = false;    ///< the claim stays on its way until let_through()
  };
  struct claim_call {
    std::string name;
    server::claimant who;
    std::vector<std::shared_ptr<server::tunnel>> tunnels;
  };
  struct release_call {
    std::string url;
    std::string client_id;
    clock::time_point hold_until;
  };

  /// The answers to the next claims, in order; a claim beyond them is won.
  void script(std::vector<answer> answers) {
    script_.insert(script_.end(), answers.begin(), answers.end());
  }

  /// Lets every claim waiting now take its answer.
  void let_through() {
    let_through_ = waiting_;
    gate_.notify();
  }

  /// Every claim so far, in order.
  const std::vector<claim_call>& claims() const { return claims_; }
  /// Every release so far, in order.
  const std::vector<release_call>& releases() const { return releases_; }

  net::asio::awaitable<server::claim_answer> claim(
      std::string name, server::claimant who,
      std::vector<std::shared_ptr<server::tunnel>> tunnels) override {
    claims_.push_back({name, who, tunnels});
    answer next;
    if (next_answer_ < script_.size()) {
      next = script_[next_answer_++];
    }
    if (next.wait) {
      const std::size_t ticket = waiting_++;
      while (ticket >= let_through_) {
        co_await gate_.wait_until(clock::time_point::max());
      }
    }
    if (next.outcome == server::claim_outcome::won) {
      for (const auto& t : tunnels) {
        routes_[server::route_key(t->protocol, name)] = t;
      }
    }
    co_return server::claim_answer{next.outcome, ++revision_, next.error};
  }

  void release(const server::tunnel& t, clock::time_point hold_until) override {
    releases_.push_back({t.url, t.client_id, hold_until});
    const auto it = routes_.find(server::route_key(t.protocol, t.routing_name()));
    if (it != routes_.end() && it->second.get() == &t) {
      routes_.erase(it);
    }
  }

  server::route find(std::string_view scheme, std::string_view name) const override {
    server::route to;
    if (const auto it = routes_.find(server::route_key(scheme, name)); it != routes_.end()) {
      to.local = it->second;
    }
    return to;
  }

  std::vector<server::held_name> held_by(std::string_view) const override { return {}; }

  bool is_free(std::string_view name) const override {
    for (const auto& [key, t] : routes_) {
      if (t->routing_name() == name) {
        return false;
      }
    }
    return true;
  }

  std::vector<std::shared_ptr<server::tunnel>> local_tunnels() const override {
    std::vector<std::shared_ptr<server::tunnel>> out;
    for (const auto& [key, t] : routes_) {
      out.push_back(t);
    }
    return out;
  }

 private:
  std::vector<answer> script_;
  std::size_t next_answer_ = 0;
  std::vector<claim_call> claims_;
  std::vector<release_call> releases_;
  std::map<std::string, std::shared_ptr<server::tunnel>, std::less<>> routes_;  ///< by route_key
  std::int64_t revision_ = 0;
  std::size_t waiting_ = 0;      ///< claims that waited, or wait, for let_through()
  std::size_t let_through_ = 0;  ///< of those, how many may go on
  net::event gate_;
};

}  // namespace porthole::testing
