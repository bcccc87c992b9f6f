#include "server/connection_limits.h"

#include "log/event.h"

namespace porthole::server {

std::optional<std::size_t> log_throttle::admit(clock::time_point now) {
  if (last_ && now - *last_ < window_) {
    ++suppressed_;
    return std::nullopt;
  }
  last_ = now;
  return std::exchange(suppressed_, 0);
}

std::string seconds_text(std::chrono::seconds s) {
  return std::to_string(s.count()) + "s";
}

std::string ip_string(const net::tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    return net::asio::ip::make_address_v4(net::asio::ip::v4_mapped, addr.to_v6()).to_string();
  }
  return addr.to_string();
}

ip_connection_counts::slot& ip_connection_counts::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::move(other.state_);
    ip_ = std::move(other.ip_);
  }
  return *this;
}

ip_connection_counts::slot::~slot() {
  reset();
}

void ip_connection_counts::slot::reset() {
  if (!state_) {
    return;
  }
  auto it = state_->open.find(ip_);
  if (it != state_->open.end() && --it->second == 0) {
    state_->open.erase(it);
  }
  state_.reset();
}

ip_connection_counts::slot ip_connection_counts::acquire(const std::string& ip) {
  std::size_t& n = state_->open[ip];
  if (state_->limit != 0 && n >= state_->limit) {
    if (n == 0) {
      state_->open.erase(ip);
    }
    return {};
  }
  ++n;
  return slot(state_, ip);
}

std::size_t ip_connection_counts::open(std::string_view ip) const {
  auto it = state_->open.find(ip);
  return it == state_->open.end() ? 0 : it->second;
}

handshake_slots::slot& handshake_slots::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    leave();
    state_ = std::move(other.state_);
    entry_ = std::move(other.entry_);
    it_ = other.it_;
    left_ = std::exchange(other.left_, true);
  }
  return *this;
}

void handshake_slots::slot::leave() {
  if (!state_ || left_) {
    return;
  }
  left_ = true;
  // A connection cut off was taken out of the list when it was cut off.
  if (!entry_->cut_off) {
    state_->waiting.erase(it_);
  }
}

handshake_slots::slot handshake_slots::enter(net::tcp::socket& sock, std::string peer) {
  if (state_->limit != 0 && state_->waiting.size() >= state_->limit) {
    std::shared_ptr<entry> oldest = state_->waiting.front();
    state_->waiting.pop_front();
    oldest->cut_off = true;
    net::error_code ignored;
    oldest->sock->shutdown(net::tcp::socket::shutdown_both, ignored);
    oldest->sock->cancel(ignored);
    if (auto skipped = state_->throttle.admit()) {
      log::warn(
          "connections in their TLS handshake or first message at the limit; cutting off "
          "the oldest",
          {{"peer", peer},
           {"limit", state_->limit},
           {"flag", "--max-handshakes"},
           {"oldest", oldest->peer},
           {"suppressed", log::if_nonzero(*skipped)}});
    }
  }
  auto e = std::make_shared<entry>(entry{&sock, std::move(peer)});
  state_->waiting.push_back(e);
  return slot(state_, e, std::prev(state_->waiting.end()));
}

}  // namespace porthole::server
