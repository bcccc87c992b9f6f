#pragma once
// A passive observer of one proxied HTTP/1.1 connection: the relay shows it
// every byte each way, in arrival order, and it assembles the exchanges the
// inspector shows. It never changes, holds up or refuses the bytes; when it
// cannot follow the traffic it stops capturing that connection, nothing more.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "http/message_parser.h"
#include "inspect/exchange.h"

namespace porthole::inspect {

/// What an http_capture records besides the bytes, and its bounds.
struct http_capture_options {
  std::string tunnel_name;
  std::string public_url;   ///< e.g. "https://app.example.com"
  std::string remote_addr;  ///< the public client's address
  /// The HTTP version the public client spoke when it was not the one the
  /// tunnel carried ("HTTP/2": portholed carries it as HTTP/1.1); recorded
  /// as the exchange's version.
  std::string public_version;
  /// Body bytes kept per body; the rest is counted, not kept.
  std::size_t body_limit = 1024 * 1024;
  /// Requests seen and not yet answered; more pipelined than this stops the
  /// capture of the connection (each may hold up to two bodies).
  std::size_t max_pending = 32;
  /// Request bytes held unparsed while an upgrade request waits for its
  /// response; more stops the capture.
  std::size_t upgrade_hold_limit = 64 * 1024;
  /// Where time comes from; the system clock when empty. Tests inject one.
  std::function<std::chrono::system_clock::time_point()> clock;
};

/// Assembles the exchanges of one connection from its bytes. Not thread-safe:
/// the relay calls it from the connection's own strand. No member throws.
///
/// An exchange is handed to the callback once both its request and its
/// response are complete, or at on_close() with an error saying what was
/// missing. A connection upgraded by a 101 gives one exchange, at on_close(),
/// with the bytes and WebSocket messages each way after the 101.
class http_capture {
 public:
  /// Called with each finished exchange (id 0, not stored yet). It should
  /// hand the exchange on (e.g. capture_writer::submit) and return; an
  /// exception it throws is logged and swallowed.
  using sink = std::function<void(exchange)>;

  http_capture(http_capture_options options, sink on_exchange);

  /// Bytes going from the public side to the local service.
  void on_request_bytes(std::string_view bytes) noexcept;
  /// Bytes coming back from the local service.
  void on_response_bytes(std::string_view bytes) noexcept;
  /// The connection has ended (either side); flushes what is pending. Later
  /// calls of any member do nothing.
  void on_close() noexcept;

  // Framed input: a relay that frames the messages itself, one exchange at a
  // time, hands over what it parsed instead of the bytes, and nothing is
  // parsed twice. Body bytes are as they travel (chunked framing included).
  // Between exchanges a connection may go on in bytes (an upgrade request),
  // never the other way round.

  /// A request head, the start of an exchange.
  void framed_request_head(const http::request_head& head) noexcept;
  void framed_request_body(std::string_view bytes) noexcept;
  void framed_request_end() noexcept;
  /// A response head of the current exchange: an interim 1xx one is not kept.
  void framed_response_head(const http::response_head& head) noexcept;
  void framed_response_body(std::string_view bytes) noexcept;
  /// The end of the response whose head came last (an interim one's too).
  void framed_response_end() noexcept;
  /// The traffic can no longer be followed (e.g. a response that is not
  /// valid HTTP): what was whole is kept, with `why`, and nothing more.
  void abandon(std::string_view why) noexcept;

  /// True once capture stopped: after a parse error, a bound was hit, or on_close().
  bool stopped() const { return stopped_; }

 private:
  /// One WebSocket direction, framed just enough to count messages.
  struct frame_counter {
    std::uint64_t messages = 0;
    std::uint8_t header[14] = {};
    std::size_t header_have = 0;
    std::uint64_t payload_left = 0;
    void feed(std::string_view bytes);
  };

  /// An exchange whose request head has been seen.
  struct pending_exchange {
    exchange ex;
    std::chrono::system_clock::time_point started;
    bool request_done = false;
    bool response_done = false;
    /// Asks to switch protocols (an Upgrade or a CONNECT).
    bool upgrade = false;
  };

  std::chrono::system_clock::time_point now();
  /// Parse `input`: the held bytes of that direction, or, when none are held,
  /// new bytes where they lie (not copied first). Whatever is left unparsed
  /// is held.
  void parse_requests(std::string_view input);
  void parse_responses(std::string_view input);
  void on_request_head();
  void on_response_head();
  /// A pending exchange for `head`; false if no more may be pending.
  bool start_exchange(const http::request_head& head);
  void start_response(const http::response_head& head);
  pending_exchange* answered();
  void complete_response();
  void switch_protocols(pending_exchange& p);
  void emit_ready();
  void emit(exchange ex);
  void stop(std::string_view why);

  http_capture_options options_;
  sink on_exchange_;
  http::request_parser requests_{http::forwarded_limits};  ///< reads what the server forwarded
  http::response_parser responses_;
  std::string request_bytes_;   ///< request bytes held: not yet consumed by the parser
  std::string response_bytes_;  ///< response bytes held: not yet consumed by the parser
  /// Exchanges in request order; the front is the one the next response answers.
  std::deque<pending_exchange> pending_;
  /// The back of pending_ is a request whose body is still arriving.
  bool reading_request_ = false;
  /// A final response head was read; its body is still arriving.
  bool reading_response_ = false;
  /// The response being read is a 1xx that the exchange does not keep.
  bool response_is_interim_ = false;
  /// When the head of the request now arriving began.
  std::optional<std::chrono::system_clock::time_point> request_began_;
  /// An upgrade (or CONNECT) request was read: further request bytes are held
  /// unparsed until its response says whether the protocol switches.
  bool awaiting_upgrade_ = false;
  /// After a 101: bytes are counted, not parsed.
  bool switched_ = false;
  /// Frames are counted only when the 101 switched to WebSocket.
  bool count_frames_ = false;
  websocket_traffic websocket_;
  frame_counter frames_in_;
  frame_counter frames_out_;
  bool stopped_ = false;
  /// The time of the byte being handled, read once per call.
  std::optional<std::chrono::system_clock::time_point> now_;
};

/// A body as a reader wants it: transfer and content codings removed.
struct body_decoding {
  std::string bytes;  ///< what could be decoded (possibly a prefix of the whole)
  /// Empty when `bytes` is the whole decoded body; otherwise why it is not,
  /// e.g. "body was cut at the capture limit" or "unsupported coding: zstd".
  std::string error;
  bool complete() const { return error.empty(); }
};

/// Removes chunked framing and the gzip, deflate and br codings named by
/// Transfer-Encoding and Content-Encoding from a captured raw body. The result
/// is cut at `output_limit` (a bound against decompression bombs).
body_decoding decoded_body(const header_list& headers, const captured_body& body,
                           std::size_t output_limit = 16 * 1024 * 1024);

}  // namespace porthole::inspect
