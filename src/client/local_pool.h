#pragma once
// Idle keep-alive connections to local HTTP services, kept between requests
// as a reverse proxy keeps its upstream connections: a public connection to
// an http tunnel then costs the client no local dial.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace porthole::client {

/// The bounds of a local_pool.
struct local_pool_limits {
  /// Idle connections kept per local address; 0 keeps none (every request dials).
  /// Above the requests a service usually has in flight at once, or the
  /// connections beyond it are closed after each response and dialled again.
  std::size_t per_address = 64;
  /// An idle connection unused for this long is closed. Shorter than the
  /// keep-alive time-out of common servers (Node.js 5 s, nginx 75 s), so that
  /// the client, not the service, closes first.
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(4);
};

/// Single-threaded: use it from the executor it was made with. Held by
/// shared_ptr: its sweep timer holds a weak reference.
class local_pool : public std::enable_shared_from_this<local_pool> {
 public:
  using socket = boost::asio::ip::tcp::socket;

  local_pool(const boost::asio::any_io_executor& executor, local_pool_limits limits);
  ~local_pool();
  local_pool(const local_pool&) = delete;
  local_pool& operator=(const local_pool&) = delete;

  /// The most recently used idle connection to `addr` that the service has
  /// not closed, if any. A connection the service closed or reset, or on
  /// which it sent anything while idle, is closed and never handed out (the
  /// kernel is asked as it is taken).
  std::optional<socket> take(const std::string& addr);

  /// Keeps `s`, whose last response left it reusable, for a later request to
  /// `addr`; closes it if `addr` already has its share of idle connections.
  void put(const std::string& addr, socket s);

  /// Idle connections kept now, over every address.
  std::size_t idle() const { return idle_; }

  const local_pool_limits& limits() const { return limits_; }

 private:
  struct entry;
  using clock = std::chrono::steady_clock;

  void sweep();
  void arm_sweep();

  local_pool_limits limits_;
  boost::asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  /// Per address, oldest first: taken from the back, expired from the front.
  std::map<std::string, std::deque<std::shared_ptr<entry>>, std::less<>> idle_by_addr_;
  std::size_t idle_ = 0;
};

}  // namespace porthole::client
