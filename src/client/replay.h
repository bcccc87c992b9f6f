#pragma once
// Replaying a captured request to a tunnel's local service, directly (not
// through the server), optionally edited first; the answer is captured like
// any exchange.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "inspect/exchange.h"

namespace porthole::client {

/// Changes to make to a request before replaying it; each one absent keeps
/// the original's.
struct replay_edit {
  std::optional<std::string> method;
  std::optional<std::string> target;
  /// Replaces every header.
  std::optional<inspect::header_list> headers;
  /// Replaces the body; Content-Length is set to its size and
  /// Transfer-Encoding dropped, and Content-Encoding too unless `headers` is
  /// given (the new body is sent as it is).
  std::optional<std::string> body;

  bool empty() const { return !method && !target && !headers && !body; }
};

/// The bytes of `original` edited by `edit`, ready to send: the request as
/// captured, byte for byte, when `edit` is empty. Throws
/// std::invalid_argument naming the problem when it cannot be replayed: a
/// body cut at capture (unless the edit replaces it), or a method, target or
/// header that would break the request line or header framing.
std::string replay_request(const inspect::captured_request& original, const replay_edit& edit);

/// Where a replay goes and how it is recorded.
struct replay_target {
  std::string local_host;
  std::string local_port;
  std::string tunnel_name;
  std::string public_url;
  std::size_t body_limit = 1024 * 1024;
  std::chrono::milliseconds connect_timeout{10'000};
  /// From sending the request to the end of the response.
  std::chrono::milliseconds response_timeout{30'000};
};

/// How a replay went: the exchange it made (with replay_of set, not stored
/// yet), or why the local service could not be reached.
struct replay_result {
  std::optional<inspect::exchange> exchange;
  std::string unreachable;  ///< e.g. "local service 127.0.0.1:8080 is down: Connection refused"
};

/// Sends `request_bytes` (from replay_request) to the target's local service
/// on one new connection and reads the response. An exchange whose response
/// did not come (reset, closed early, too slow) has its `error` set.
boost::asio::awaitable<replay_result> replay(std::string request_bytes, std::int64_t original_id,
                                             replay_target target);

}  // namespace porthole::client
