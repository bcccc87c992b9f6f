#pragma once
// Counting the coroutines an owner must outlive.

#include "net/event.h"

namespace porthole::net {

/// Counts a coroutine in `running` while its frame lives, however it ends,
/// and wakes `ended` when it goes: its owner waits for the count to reach
/// zero before it frees what the coroutine touches.
class running_guard {
 public:
  running_guard(int& running, event& ended) : running_(running), ended_(ended) {}
  running_guard(const running_guard&) = delete;
  running_guard& operator=(const running_guard&) = delete;
  ~running_guard() {
    --running_;
    ended_.notify();
  }

 private:
  int& running_;
  event& ended_;
};

}  // namespace porthole::net
