#pragma once
// Starting a coroutine whose escaped exception is logged, never lost.

#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <string>

#include "net/stream.h"

namespace porthole::net {

/// Logs an exception that escaped a coroutine named `what`; a cancellation
/// (operation_aborted) is a normal way to end and is not logged.
void log_escaped(std::exception_ptr e, const std::string& what);

/// co_spawn with a completion handler that logs what escaped.
template <class Executor, class T>
void spawn(const Executor& ex, asio::awaitable<T> task, std::string what) {
  asio::co_spawn(ex, std::move(task), [what = std::move(what)](std::exception_ptr e, auto&&...) {
    if (e) {
      log_escaped(e, what);
    }
  });
}

}  // namespace porthole::net
