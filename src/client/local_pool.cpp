#include "client/local_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <boost/system/error_code.hpp>
#include <cerrno>

namespace porthole::client {

struct local_pool::entry {
  entry(socket s, std::string a) : sock(std::move(s)), addr(std::move(a)) {}
  socket sock;
  std::string addr;
  clock::time_point since = clock::now();
};

local_pool::local_pool(const boost::asio::any_io_executor& executor, local_pool_limits limits)
    : limits_(limits), sweep_timer_(executor) {}

local_pool::~local_pool() {
  for (auto& [addr, entries] : idle_by_addr_) {
    for (auto& e : entries) {
      boost::system::error_code ignored;
      e->sock.close(ignored);
    }
  }
}

namespace {

/// True if the service closed, reset or wrote on an idle connection: one
/// system call at the moment of use, instead of a watch on every idle
/// connection (an epoll_ctl each time one is put back, and a wake-up).
bool closed_or_spoke(local_pool::socket& s) {
  char byte = 0;
  const ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

}  // namespace

std::optional<local_pool::socket> local_pool::take(const std::string& addr) {
  auto it = idle_by_addr_.find(addr);
  if (it == idle_by_addr_.end()) {
    return std::nullopt;
  }
  auto& entries = it->second;
  const auto now = clock::now();
  while (!entries.empty()) {
    std::shared_ptr<entry> e = std::move(entries.back());
    entries.pop_back();
    --idle_;
    boost::system::error_code ignored;
    if (now - e->since >= limits_.idle_timeout || closed_or_spoke(e->sock)) {
      e->sock.close(ignored);
      continue;
    }
    if (entries.empty()) {
      idle_by_addr_.erase(it);
    }
    return std::move(e->sock);
  }
  idle_by_addr_.erase(it);
  return std::nullopt;
}

void local_pool::put(const std::string& addr, socket s) {
  if (limits_.per_address == 0 || !s.is_open()) {
    return;
  }
  auto& entries = idle_by_addr_[addr];
  if (entries.size() >= limits_.per_address) {
    // The oldest goes: the newest is the most likely to be kept open by the service.
    boost::system::error_code ignored;
    entries.front()->sock.close(ignored);
    entries.pop_front();
    --idle_;
  }
  auto e = std::make_shared<entry>(std::move(s), addr);
  entries.push_back(e);
  ++idle_;
  arm_sweep();
}

// Connections nobody took for idle_timeout are closed by one timer for the
// whole pool, armed only while something is idle.
void local_pool::arm_sweep() {
  if (sweep_armed_ || idle_ == 0) {
    return;
  }
  sweep_armed_ = true;
  sweep_timer_.expires_after(limits_.idle_timeout);
  sweep_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    if (auto pool = weak.lock()) {
      pool->sweep_armed_ = false;
      pool->sweep();
      pool->arm_sweep();
    }
  });
}

void local_pool::sweep() {
  const auto now = clock::now();
  for (auto it = idle_by_addr_.begin(); it != idle_by_addr_.end();) {
    auto& entries = it->second;
    while (!entries.empty() && now - entries.front()->since >= limits_.idle_timeout) {
      boost::system::error_code ignored;
      entries.front()->sock.close(ignored);
      entries.pop_front();
      --idle_;
    }
    it = entries.empty() ? idle_by_addr_.erase(it) : std::next(it);
  }
}

}  // namespace porthole::client
