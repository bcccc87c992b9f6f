#pragma once
// The proxy connections one client keeps ready, so that a new public
// connection starts without a round trip to the client.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "net/event.h"
#include "net/stream.h"
#include "server/connection_limits.h"

namespace porthole::server {

using clock = std::chrono::steady_clock;

/// Pool of registered, unused proxy connections of one client. It asks the
/// client for more (through `request_more`, which sends ReqProxy) so that
/// ready + requested stays at the target plus the number of waiting takers.
/// Idle connections are watched: one the client closed is dropped at once,
/// one idle longer than the idle limit is replaced. Single-threaded.
class proxy_pool {
 public:
  struct options {
    int target = 10;  ///< connections kept ready
    clock::duration idle_limit = std::chrono::seconds(60);
    clock::duration request_timeout =
        std::chrono::seconds(30);  ///< an unanswered ReqProxy is forgotten after this
  };

  proxy_pool(net::asio::any_io_executor ex, options opts, std::function<void()> request_more);
  ~proxy_pool();

  /// Asks for the initial connections.
  void start();

  /// A connection that registered with RegProxy, with the count of its
  /// address's connections it keeps while pooled. Returns how many pooled
  /// connections were closed as surplus: the pool holds at most its target
  /// plus the takers waiting, whatever the client sends.
  std::size_t add(std::unique_ptr<net::tls_stream> conn, ip_connection_counts::slot counted = {});

  /// The oldest ready connection, waiting for one until `deadline`; nullptr
  /// on the deadline or when the pool is closed.
  net::asio::awaitable<std::unique_ptr<net::tls_stream>> take(clock::time_point deadline);

  /// Drops every connection and wakes every taker with nullptr.
  void close();

  /// Drops connections idle for longer than the limit and asks for
  /// replacements; the control session calls this periodically. Returns how
  /// many were dropped.
  std::size_t expire_idle();

  std::size_t ready() const { return idle_.size(); }
  int target() const { return opts_.target; }

 private:
  struct idle_conn {
    std::uint64_t id;
    std::unique_ptr<net::tls_stream> stream;
    clock::time_point since;
    ip_connection_counts::slot counted;
  };

  net::asio::awaitable<void> watch(std::uint64_t id, net::tls_stream* stream);
  void top_up();
  void forget_stale_requests();

  net::asio::any_io_executor ex_;
  options opts_;
  std::function<void()> request_more_;
  std::deque<idle_conn> idle_;
  std::deque<clock::time_point> requested_;  ///< ReqProxy sent and not yet answered
  net::event arrived_;
  int waiting_ = 0;
  std::uint64_t next_id_ = 1;
  bool closed_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace porthole::server
