#pragma once
// The client's side of an http tunnel's public connection: each HTTP/1.1
// request that arrives on the tunnel goes to the local service on a
// keep-alive connection from a local_pool (or a new one), its response comes
// back, and the connection goes back to the pool when the response allows.
// Bytes pass unchanged; they are only framed, to know where each message ends.
// An upgrade (WebSocket), CONNECT, anything but HTTP/1.1, or bytes that do not
// parse get a local connection of their own, relayed as bytes.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "client/local_pool.h"
#include "http/message_parser.h"
#include "net/channel.h"
#include "net/relay.h"

namespace porthole::client {

/// Sees what forward_http forwards, as it goes: each exchange as the messages
/// it framed (heads parsed once, body bytes as they travel), and the bytes of
/// a connection relayed as bytes (relay_observer's part). No member may block
/// or throw.
class http_observer : public net::relay_observer {
 public:
  virtual void request_head(const http::request_head& head) noexcept = 0;
  virtual void request_body(std::string_view bytes) noexcept = 0;
  virtual void request_end() noexcept = 0;
  /// Interim 1xx responses included, each ended by response_end().
  virtual void response_head(const http::response_head& head) noexcept = 0;
  virtual void response_body(std::string_view bytes) noexcept = 0;
  virtual void response_end() noexcept = 0;
  /// What follows cannot be told as messages (why says what happened).
  virtual void lost_track(std::string_view why) noexcept = 0;
};

/// Where and how one tunnel's requests are forwarded.
struct local_http_target {
  std::string host;  ///< the local service
  std::string port;
  std::string url;  ///< the public URL, for logs
  std::chrono::milliseconds dial_timeout{10000};
  /// Nothing moved either way for this long ends the public connection.
  std::chrono::steady_clock::duration idle = std::chrono::hours(2);
  /// How long the public side is given to end the connection after its last
  /// answer, before the tunnel is closed anyway.
  std::chrono::steady_clock::duration linger = std::chrono::seconds(2);
};

/// What forward_http did, for logs and tests.
struct local_http_totals {
  std::uint64_t requests = 0;  ///< requests forwarded (a retried one counts once)
  std::uint64_t dials = 0;     ///< local connections opened
  std::uint64_t reused = 0;    ///< requests sent on a connection from the pool
  std::uint64_t retried = 0;   ///< idempotent requests sent again after a reused connection failed
};

/// Serves `tunnel` until it ends. A request is sent again on a new connection
/// only if it is idempotent, carries no body, went out on a reused connection
/// and nothing of its response came back; otherwise a failure after the
/// request left ends the public connection. If the local service cannot be
/// reached, the public client gets a 502 page. `observer` (capture), if
/// given, must outlive the call.
/// `initial` are tunnel bytes read before (the start of the first request).
net::asio::awaitable<local_http_totals> forward_http(net::channel& tunnel,
                                                     std::shared_ptr<local_pool> pool,
                                                     local_http_target target,
                                                     std::string initial = {},
                                                     http_observer* observer = nullptr);

}  // namespace porthole::client
