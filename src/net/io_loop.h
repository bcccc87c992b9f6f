#pragma once
// The event loop a composition root runs, and how it ends.

#include <boost/asio/io_context.hpp>

namespace porthole::net {

namespace asio = boost::asio;

/// An io_context that can destroy what is still pending on it while the
/// objects its coroutines touch are alive.
///
/// After stop(), coroutines may still be suspended on it. ~io_context
/// destroys their frames, and the locals of a frame run their destructors
/// then (a connection's counters, slots, sessions): were the server or the
/// agent that started them destroyed first, those destructors would write to
/// freed memory. A composition root therefore calls destroy_pending() once
/// run() has returned and before it destroys anything the coroutines use.
class io_loop : public asio::io_context {
 public:
  using asio::io_context::io_context;

  /// Destroys every handler and coroutine frame still pending, unrun. The
  /// loop runs nothing afterwards; I/O objects may still be destroyed.
  void destroy_pending() { shutdown(); }
};

}  // namespace porthole::net
