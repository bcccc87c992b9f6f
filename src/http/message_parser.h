#pragma once
// Incremental framing of a stream of HTTP/1.1 messages in one direction, so a
// relay can forward the raw bytes unchanged while it knows where each head,
// body and message ends. Pure: bytes in, positions and heads out.

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace porthole::http {

/// Bounds on what a parser accepts.
struct parser_limits {
  std::size_t header_limit = 32 * 1024;  ///< a head longer than this is refused (431 for requests)
  std::size_t max_fields = 100;          ///< a request head with more fields is refused (431)
};

/// The most an operator may raise portholed's bounds on a public request head
/// to (--header-limit, --max-header-fields).
inline constexpr std::size_t max_header_limit = 1024 * 1024;
inline constexpr std::size_t max_max_fields = 10000;

/// Bounds for a parser that reads heads portholed forwarded (the client's
/// capture), not heads from the public: whatever the server's flags let
/// through, plus what add_forwarded_fields adds (six fields; X-Forwarded-Host
/// and Forwarded repeat Host's value, so at most twice the head's size).
inline constexpr parser_limits forwarded_limits{3 * max_header_limit + 4096, max_max_fields + 6};

/// A header field as it appeared on the wire.
struct field {
  std::string name;
  std::string value;
};

/// The parsed head of a request.
struct request_head {
  std::string method;
  std::string target;
  unsigned version = 11;  ///< 10 for HTTP/1.0, 11 for HTTP/1.1
  std::vector<field> fields;
  bool keep_alive = true;  ///< the connection may carry another request after this one
  bool upgrade = false;    ///< asks to switch protocols (Connection: upgrade, Upgrade: ...)

  /// The value of the first field with this name (case-insensitive), if any.
  std::optional<std::string_view> find(std::string_view name) const;
};

/// The parsed head of a response.
struct response_head {
  unsigned status = 0;
  std::string reason;
  unsigned version = 11;
  std::vector<field> fields;
  bool keep_alive = true;

  std::optional<std::string_view> find(std::string_view name) const;
};

/// Receives what a parser frames, decoded: the body without its chunked
/// encoding, and the trailer fields of a chunked body. For a relay that
/// carries a message's content in another framing (HTTP/2).
class body_sink {
 public:
  virtual ~body_sink() = default;
  /// Some bytes of the current message's body, in order.
  virtual void body(std::string_view bytes) = 0;
  /// A trailer field (after the last chunk).
  virtual void trailer(std::string_view name, std::string_view value) = 0;
};

/// What one call to parse() did with the front of its input.
struct parse_result {
  std::size_t consumed = 0;       ///< bytes at the front of the input used by this call
  bool head_complete = false;     ///< the used bytes are exactly the rest of a head, now parsed
  bool message_complete = false;  ///< the used bytes end the message; the next byte starts another
  boost::system::error_code
      error;  ///< the stream is not valid HTTP/1.1; nothing more can be parsed
};
// On error, `consumed` counts only body bytes that were valid before the
// fault (never part of a head), and every later call reports the same error.
// A head over header_limit gives boost::beast::http::error::header_limit; a
// line ending that is not CRLF gives http::error::bare_line_ending as soon as
// it arrives (heads of requests and responses); a request head that breaks a
// rule of check_request_head() gives that rule's http::error; other faults
// (in bodies, trailers and response heads) give the Beast parser's error.

/// Frames requests: call parse() with the unparsed bytes, forward the first
/// `consumed` of them, drop them and call again. A call never consumes past
/// the end of a head or of a message, so a caller can act between them.
/// While a head is incomplete parse() consumes nothing and asks for more
/// (consumed == 0, no flags); the caller keeps the bytes and reads more.
class request_parser {
 public:
  explicit request_parser(parser_limits limits = {});
  ~request_parser();
  request_parser(request_parser&&) noexcept;
  request_parser& operator=(request_parser&&) noexcept;

  parse_result parse(std::string_view input);

  /// The head of the current message; valid once head_complete was reported
  /// and until the next message's head completes.
  const request_head& head() const;

  /// True between messages: nothing of the next message has been consumed.
  bool at_message_start() const;

  /// Between messages, frees what the last head held (an idle keep-alive
  /// connection keeps no head); head() is empty afterwards.
  void release();

  /// From now on, every body byte and trailer goes to `sink` as well
  /// (nullptr: none), the current message's included. The sink must outlive
  /// the parser's use of it.
  void decode_into(body_sink* sink);

 private:
  struct impl;
  parser_limits limits_;
  body_sink* sink_ = nullptr;
  std::unique_ptr<impl> impl_;  ///< made by the first parse(), dropped by release()
};

/// Frames responses. Each response answers the oldest request not yet
/// answered: call expect() with that request's method before its response is
/// parsed, so HEAD responses are known to have no body. Interim 1xx responses
/// other than 101 complete as messages of their own and leave the request
/// unanswered; a 101, or a 2xx to CONNECT, ends HTTP on the connection.
class response_parser {
 public:
  explicit response_parser(parser_limits limits = {});
  ~response_parser();
  response_parser(response_parser&&) noexcept;
  response_parser& operator=(response_parser&&) noexcept;

  /// Queues the method of a request whose response will follow.
  void expect(std::string_view method);

  /// Responses owed: requests expected and not yet given a final response.
  /// A request stops being owed once the head of its final response is parsed.
  std::size_t pending() const;

  parse_result parse(std::string_view input);

  const response_head& head() const;

  /// Between responses, frees what the last head held (all of the parser's
  /// memory when no response is owed); head() is empty afterwards.
  void release();

  /// True once a 101 (or 2xx to CONNECT) completed: what follows is not HTTP.
  /// From then on parse() consumes all its input, with no flags.
  bool switched_protocols() const;

  /// True if the current response's body runs until the connection closes
  /// (no Content-Length, not chunked). Such a message never reports
  /// message_complete: parse() consumes all its input, and the caller treats
  /// EOF as the end of the message.
  bool body_until_close() const;

  /// As request_parser::decode_into.
  void decode_into(body_sink* sink);

 private:
  struct impl;
  impl& state();
  parser_limits limits_;
  body_sink* sink_ = nullptr;
  std::unique_ptr<impl> impl_;  ///< made when first needed, dropped by release() when idle
};

}  // namespace porthole::http
