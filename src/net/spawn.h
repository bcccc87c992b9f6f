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
///
/// The rule for every coroutine started here or with asio::co_spawn: nobody
/// awaits it, so it may outlive the code that started it. It therefore
/// either is joined before the owner of what it touches goes (an event it
/// notifies at its end, waited for by the owner), or owns (shares) what it
/// touches: parameters by value, shared_ptr to the session, connection or
/// state, never a reference or raw pointer to a stream, socket, buffer or
/// session its caller owns. Coroutines that use the server or the agent
/// (`this`) rely on the composition root destroying pending frames before
/// those (net::io_loop). docs/SECURITY.md lists every place that spawns.
template <class Executor, class T>
void spawn(const Executor& ex, asio::awaitable<T> task, std::string what) {
  asio::co_spawn(ex, std::move(task), [what = std::move(what)](std::exception_ptr e, auto&&...) {
    if (e) {
      log_escaped(e, what);
    }
  });
}

}  // namespace porthole::net
