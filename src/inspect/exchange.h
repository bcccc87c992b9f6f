#pragma once
// One captured HTTP exchange as the inspector shows it: plain values (and a
// header lookup), so the capture hooks, the store and the JSON API can share it.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/ascii.h"

namespace porthole::inspect {

/// Header fields in the order they were received; names keep their case and
/// repeated names stay separate entries.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// The value of the first header named `name` (in any case), or null.
inline const std::string* find_header(const header_list& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (http::iequals(n, name)) {
      return &v;
    }
  }
  return nullptr;
}

/// The value of the first header named `name` (in any case), or "".
inline std::string header_value(const header_list& headers, std::string_view name) {
  const std::string* v = find_header(headers, name);
  return v ? *v : std::string();
}

/// A captured message body, possibly cut at the capture bound.
struct captured_body {
  /// The bytes kept (any bytes, NUL included); at most the capture bound.
  std::string bytes;
  /// The size of the whole body as it went through the tunnel.
  std::uint64_t size = 0;
  /// True when `bytes` holds less than `size`.
  bool truncated = false;

  friend bool operator==(const captured_body&, const captured_body&) = default;
};

/// The request as it arrived from the public side.
struct captured_request {
  std::string method;   ///< e.g. "GET"
  std::string target;   ///< the request target as sent, e.g. "/a?b=c"
  std::string version;  ///< e.g. "HTTP/1.1"
  header_list headers;
  captured_body body;

  friend bool operator==(const captured_request&, const captured_request&) = default;
};

/// The response as the local service sent it.
struct captured_response {
  int status = 0;       ///< e.g. 200
  std::string reason;   ///< e.g. "OK"; may be empty
  std::string version;  ///< e.g. "HTTP/1.1"
  header_list headers;
  captured_body body;

  friend bool operator==(const captured_response&, const captured_response&) = default;
};

/// What went through a connection upgraded to WebSocket after its 101.
struct websocket_traffic {
  std::uint64_t messages_in = 0;   ///< messages from the public side
  std::uint64_t messages_out = 0;  ///< messages from the local service
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;

  friend bool operator==(const websocket_traffic&, const websocket_traffic&) = default;
};

/// One request and, once it came, its response.
struct exchange {
  /// Assigned by the store; 0 until then. Ids only grow and are never reused.
  std::int64_t id = 0;
  std::string tunnel_name;
  std::string public_url;   ///< e.g. "https://app.example.com"
  std::string remote_addr;  ///< the public client's address, e.g. "203.0.113.7:51234"
  /// When the request's first byte arrived.
  std::chrono::sys_time<std::chrono::milliseconds> start{};
  /// From the request's first byte to the response's last (or the failure).
  std::chrono::microseconds duration{0};
  captured_request request;
  /// None while pending or when no response came (see `error`).
  std::optional<captured_response> response;
  /// The id of the exchange this one replayed, if it is a replay.
  std::optional<std::int64_t> replay_of;
  /// Set when the connection was upgraded to WebSocket.
  std::optional<websocket_traffic> websocket;
  /// Why the exchange failed, e.g. "local service unreachable"; empty if it did not.
  std::string error;

  friend bool operator==(const exchange&, const exchange&) = default;
};

}  // namespace porthole::inspect
