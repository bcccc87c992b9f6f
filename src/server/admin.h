#pragma once
// The admin endpoint (--admin-addr, default 127.0.0.1:9180): GET /metrics in
// the Prometheus text format and GET /healthz for supervisors and load
// balancers. Plain HTTP/1.1, kept apart from the public ports.

#include <functional>
#include <memory>
#include <string>

#include "net/stream.h"

namespace porthole::server {

/// A small HTTP server on its own address. Single-threaded: everything runs on
/// the io_context's thread. Destroy it before the io_context.
class admin_endpoint {
 public:
  struct handlers {
    /// The /metrics page (it may gather its figures from other threads).
    std::function<net::asio::awaitable<std::string>()> metrics;
    /// /healthz: 200 with `text` while `ok`, else 503 (shutting down, a
    /// cluster node that lost its lease).
    std::function<std::pair<bool, std::string>()> health;
  };

  /// `addr` is [HOST]:PORT; nothing is bound before start().
  admin_endpoint(net::asio::any_io_executor ex, std::string addr, handlers h);
  /// Calls stop().
  ~admin_endpoint();
  admin_endpoint(const admin_endpoint&) = delete;
  admin_endpoint& operator=(const admin_endpoint&) = delete;

  /// Binds and accepts; throws std::runtime_error naming the address if it
  /// cannot listen. Logs the address, with a warning when it is not loopback.
  void start();

  /// Closes the listener and every open connection. Idempotent.
  void stop();

  /// The bound address (with the port the OS chose for port 0).
  net::tcp::endpoint endpoint() const;

 private:
  struct state;
  std::shared_ptr<state> state_;  // shared with the coroutines, which may outlive *this
};

}  // namespace porthole::server
