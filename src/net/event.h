#pragma once
// A wake-up signal for coroutines on one executor. Not thread-safe: use it
// only from the executor that runs its waiters.

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <vector>

#include "net/stream.h"

namespace porthole::net {

class event {
 public:
  /// Wakes every coroutine now waiting.
  void notify() {
    for (asio::steady_timer* t : waiters_) {
      t->cancel();
    }
    waiters_.clear();
  }

  /// Sleeps until notify() or `deadline`; returns true if notified.
  asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline) {
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    // Unregistered by a destructor: a coroutine frame destroyed without
    // resuming (its io_context going away) must not leave its timer behind.
    struct registration {
      std::vector<asio::steady_timer*>& waiters;
      asio::steady_timer* timer;
      ~registration() { std::erase(waiters, timer); }
    } registered{waiters_, &timer};
    waiters_.push_back(&timer);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    co_return ec == asio::error::operation_aborted;
  }

  bool has_waiters() const { return !waiters_.empty(); }

 private:
  std::vector<asio::steady_timer*> waiters_;
};

}  // namespace porthole::net
