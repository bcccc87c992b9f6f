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
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  /// Its waiters may outlive it: an io_context going away destroys coroutine
  /// frames in no set order, so the frame waiting may go after the owner of
  /// the event. They are told it is gone.
  ~event() {
    for (waiter* w : waiters_) {
      w->owner = nullptr;
    }
  }

  /// Wakes every coroutine now waiting.
  void notify() {
    for (waiter* w : waiters_) {
      w->owner = nullptr;
      w->timer.cancel();
    }
    waiters_.clear();
  }

  /// Sleeps until notify() or `deadline`; returns true if notified.
  asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline) {
    // Unregistered by its destructor: a coroutine frame destroyed without
    // resuming (its io_context going away) must not leave its timer behind.
    const auto executor = co_await asio::this_coro::executor;
    waiter w{this, asio::steady_timer(executor, deadline)};
    waiters_.push_back(&w);
    auto [ec] = co_await w.timer.async_wait(use_nothrow);
    co_return ec == asio::error::operation_aborted;
  }

  bool has_waiters() const { return !waiters_.empty(); }

 private:
  struct waiter {
    event* owner;  // null once the event has let it go (notified, or destroyed)
    asio::steady_timer timer;
    ~waiter() {
      if (owner != nullptr) {
        std::erase(owner->waiters_, this);
      }
    }
  };
  std::vector<waiter*> waiters_;
};

}  // namespace porthole::net
