#include "http/message_parser.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cstdint>
#include <deque>
#include <limits>
#include <type_traits>

#include "http/ascii.h"
#include "http/error.h"
#include "http/request_rules.h"

namespace porthole::http {

namespace {

namespace beast_http = boost::beast::http;
using boost::system::error_code;

std::optional<std::string_view> find_field(const std::vector<field>& fields,
                                           std::string_view name) {
  for (const auto& f : fields) {
    if (iequals(f.name, name)) {
      return std::string_view{f.value};
    }
  }
  return std::nullopt;
}

template <bool isRequest>
using head_of = std::conditional_t<isRequest, request_head, response_head>;

// Collects the head of one message into `head` and lets every body byte
// through without copying it. Beast parsers cannot be reused, so one of these
// lives for exactly one message.
template <bool isRequest>
class head_collector final : public beast_http::basic_parser<isRequest> {
 public:
  head_collector(head_of<isRequest>& head, body_sink* sink) : head_(head), sink_(sink) {}

  /// True once a chunk-size line of the body has been parsed.
  bool saw_chunk() const { return saw_chunk_; }

  void set_sink(body_sink* sink) { sink_ = sink; }

 private:
  using string_view = boost::beast::string_view;

  void on_request_impl(beast_http::verb, string_view method, string_view target, int version,
                       error_code&) override {
    if constexpr (isRequest) {
      head_.method.assign(method.data(), method.size());
      head_.target.assign(target.data(), target.size());
      head_.version = static_cast<unsigned>(version);
      head_.fields.clear();
    }
  }

  void on_response_impl(int status, string_view reason, int version, error_code&) override {
    if constexpr (!isRequest) {
      head_.status = static_cast<unsigned>(status);
      head_.reason.assign(reason.data(), reason.size());
      head_.version = static_cast<unsigned>(version);
      head_.fields.clear();
    }
  }

  void on_field_impl(beast_http::field name, string_view name_string, string_view value,
                     error_code& ec) override {
    if (this->is_header_done()) {
      // A trailer of a chunked body: forwarded as raw bytes, not part of the
      // head, but held to the rules of header fields all the same.
      if (!is_token({name_string.data(), name_string.size()}) ||
          !is_field_value({value.data(), value.size()})) {
        ec = error::bad_field_value;
      } else if (sink_) {
        sink_->trailer({name_string.data(), name_string.size()}, {value.data(), value.size()});
      }
      return;
    }
    if (name == beast_http::field::upgrade) {
      saw_upgrade_ = true;
    } else if (name == beast_http::field::transfer_encoding) {
      saw_transfer_encoding_ = true;
    }
    head_.fields.push_back(field{std::string{name_string.data(), name_string.size()},
                                 std::string{value.data(), value.size()}});
  }

  void on_header_impl(error_code& ec) override {
    if constexpr (isRequest) {
      // A request whose Transfer-Encoding does not end in chunked has no
      // knowable length (RFC 9112 6.3); Beast would read it as bodiless,
      // which lets a body smuggle a second request past the relay.
      if (saw_transfer_encoding_ && !this->chunked()) {
        ec = beast_http::error::bad_transfer_encoding;
        return;
      }
      head_.upgrade = this->upgrade() && saw_upgrade_;
    }
    head_.keep_alive = this->keep_alive();
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}

  std::size_t on_body_impl(string_view body, error_code&) override {
    if (sink_ && !body.empty()) {
      sink_->body({body.data(), body.size()});
    }
    return body.size();
  }

  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override { saw_chunk_ = true; }

  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    if (sink_ && !body.empty()) {
      sink_->body({body.data(), body.size()});
    }
    return body.size();
  }

  void on_finish_impl(error_code&) override {}

  head_of<isRequest>& head_;
  body_sink* sink_;
  bool saw_chunk_ = false;
  bool saw_upgrade_ = false;
  bool saw_transfer_encoding_ = false;
};

// The framing shared by requests and responses: waits for a whole head,
// parses it with a fresh Beast parser, then lets that parser count the body.
template <bool isRequest>
class message_framer {
 public:
  using head_type = head_of<isRequest>;

  explicit message_framer(parser_limits limits) : limits_(limits) {}
  message_framer(const message_framer&) = delete;
  message_framer& operator=(const message_framer&) = delete;

  bool at_message_start() const { return !parser_; }

  void set_sink(body_sink* sink) {
    sink_ = sink;
    if (parser_) {
      parser_->set_sink(sink);
    }
  }

  // Between messages: gives back the memory of the last heads.
  void release() {
    if (!parser_) {
      head_ = head_type{};
      staging_ = head_type{};
    }
  }
  const head_type& head() const { return head_; }
  const error_code& error() const { return error_; }

  // The length of the head at the front of `input`, or 0 while it is
  // incomplete. Sets error() if the head is over the limit or cannot be HTTP.
  std::size_t find_head(std::string_view input) {
    const std::size_t window = std::min(input.size(), limits_.header_limit);
    // Resume where the last call stopped, less the part of a terminator that
    // may have been cut: re-presented input costs nothing to scan again.
    const std::size_t from = std::min(scan_from_, window);
    // A line that ends in LF (or CR) alone would be read differently by
    // different parsers: refused at once, not after a time-out.
    const std::size_t bare = find_bare_line_ending(input.substr(0, window), from);
    const std::size_t end = input.substr(0, window).find("\r\n\r\n", from);
    if (bare != std::string_view::npos && (end == std::string_view::npos || bare < end)) {
      return fail(error::bare_line_ending);
    }
    if (end != std::string_view::npos) {
      scan_from_ = 0;
      start_checked_ = 0;
      method_seen_ = false;
      return end + 4;
    }
    if (input.size() >= limits_.header_limit) {
      return fail(beast_http::error::header_limit);
    }
    scan_from_ = window < 3 ? 0 : window - 3;
    check_start_line(input);
    return 0;
  }

  // Parses a complete head (as found by find_head).
  parse_result parse_head(std::string_view head, bool skip_body) {
    if constexpr (isRequest) {
      if (const error_code ec = check_request_head(head, limits_.max_fields)) {
        fail(ec);
        return {.error = ec};
      }
    }
    parser_.emplace(staging_, sink_);
    awaiting_only_last_chunk_ = false;
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits_.header_limit, std::numeric_limits<std::uint32_t>::max())));
    parser_->body_limit(boost::none);
    parser_->eager(true);
    if (skip_body) {
      parser_->skip(true);
    }
    error_code ec;
    const std::size_t used = parser_->put(boost::asio::const_buffer{head.data(), head.size()}, ec);
    if (ec == beast_http::error::need_more || (!ec && used != head.size())) {
      // Cannot happen with a head that ends in its empty line; refuse rather
      // than lose track of where messages start.
      ec = beast_http::error::partial_message;
    }
    if (ec) {
      parser_.reset();
      fail(ec);
      return {.error = ec};
    }
    std::swap(head_, staging_);
    body_until_close_ = parser_->need_eof();
    parse_result result;
    result.consumed = used;
    result.head_complete = true;
    finish_if_done(result);
    return result;
  }

  // Feeds body bytes to the current message's parser.
  parse_result parse_body(std::string_view input) {
    if (input.empty()) {
      return {};
    }
    // Beast asserts (in debug builds) that a last chunk it already waits on
    // is presented again with at least 5 bytes, which fails for a body that
    // is only its last chunk ("0\r\n" and more to come). Such a body cannot
    // end before "0\r\n\r\n", so waiting for 5 bytes delays nothing.
    if (awaiting_only_last_chunk_ && input.size() < 5) {
      return {};
    }
    error_code ec;
    parse_result result;
    result.consumed = parser_->put(boost::asio::const_buffer{input.data(), input.size()}, ec);
    if (ec == beast_http::error::need_more && parser_->chunked() && !parser_->saw_chunk() &&
        input.find("\r\n") != std::string_view::npos) {
      // A whole chunk-size line that started no chunk: it was the last one.
      awaiting_only_last_chunk_ = true;
    }
    if (ec && ec != beast_http::error::need_more) {
      parser_.reset();
      fail(ec);
      result.error = ec;
      return result;
    }
    finish_if_done(result);
    return result;
  }

  bool body_until_close() const { return body_until_close_; }

 private:
  std::size_t fail(error_code ec) {
    error_ = ec;
    return 0;
  }

  void finish_if_done(parse_result& result) {
    if (parser_->is_done()) {
      result.message_complete = true;
      parser_.reset();
    }
  }

  // Refuses, before the head is whole, input that cannot start a message
  // (a TLS handshake sent to a plain port, say), so the caller need not wait
  // for header_limit bytes to learn it.
  void check_start_line(std::string_view input) {
    if constexpr (isRequest) {
      // The method is a token followed by a space; each byte is checked once.
      if (method_seen_) {
        return;
      }
      for (; start_checked_ < input.size(); ++start_checked_) {
        const char c = input[start_checked_];
        if (c == ' ' && start_checked_ > 0) {
          method_seen_ = true;
          return;
        }
        if (!is_token_char(c)) {
          fail(beast_http::error::bad_method);
          return;
        }
      }
    } else {
      constexpr std::string_view prefix = "HTTP/1.";
      const std::size_t n = std::min(input.size(), prefix.size());
      if (input.substr(0, n) != prefix.substr(0, n)) {
        fail(beast_http::error::bad_version);
      }
    }
  }

  parser_limits limits_;
  body_sink* sink_ = nullptr;
  std::optional<head_collector<isRequest>> parser_;  // engaged while a body is being read
  head_type head_;                                   // the last complete head
  head_type staging_;  // the head being parsed; swapped in when complete
  std::size_t scan_from_ = 0;
  std::size_t start_checked_ = 0;  // bytes of the method already checked
  bool method_seen_ = false;
  bool body_until_close_ = false;
  bool awaiting_only_last_chunk_ = false;
  error_code error_;
};

enum class request_kind : std::uint8_t { other, head, connect };

// The status code of a head that starts "HTTP/1.x NNN", or 0.
unsigned peek_status(std::string_view head) {
  if (head.size() < 12 || head[8] != ' ') {
    return 0;
  }
  unsigned status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') {
      return 0;
    }
    status = status * 10 + static_cast<unsigned>(head[i] - '0');
  }
  return status;
}

}  // namespace

std::optional<std::string_view> request_head::find(std::string_view name) const {
  return find_field(fields, name);
}

std::optional<std::string_view> response_head::find(std::string_view name) const {
  return find_field(fields, name);
}

// request_parser

struct request_parser::impl {
  explicit impl(parser_limits limits) : framer(limits) {}
  message_framer<true> framer;
};

request_parser::request_parser(parser_limits limits) : limits_(limits) {}
request_parser::~request_parser() = default;
request_parser::request_parser(request_parser&&) noexcept = default;
request_parser& request_parser::operator=(request_parser&&) noexcept = default;

void request_parser::decode_into(body_sink* sink) {
  sink_ = sink;
  if (impl_) {
    impl_->framer.set_sink(sink);
  }
}

parse_result request_parser::parse(std::string_view input) {
  if (!impl_) {
    impl_ = std::make_unique<impl>(limits_);
    impl_->framer.set_sink(sink_);
  }
  auto& framer = impl_->framer;
  if (framer.error()) {
    return {.error = framer.error()};
  }
  if (!framer.at_message_start()) {
    return framer.parse_body(input);
  }
  const std::size_t head_length = framer.find_head(input);
  if (framer.error()) {
    return {.error = framer.error()};
  }
  if (head_length == 0) {
    return {};
  }
  return framer.parse_head(input.substr(0, head_length), false);
}

const request_head& request_parser::head() const {
  static const request_head none;
  return impl_ ? impl_->framer.head() : none;
}

void request_parser::release() {
  if (impl_ && impl_->framer.at_message_start() && !impl_->framer.error()) {
    impl_.reset();
  } else if (impl_) {
    impl_->framer.release();
  }
}

bool request_parser::at_message_start() const {
  return !impl_ || impl_->framer.at_message_start();
}

// response_parser

struct response_parser::impl {
  explicit impl(parser_limits limits) : framer(limits) {}
  message_framer<false> framer;
  std::deque<request_kind> owed;  // the requests still waiting for a final response, oldest first
  bool switched = false;
};

response_parser::response_parser(parser_limits limits) : limits_(limits) {}
response_parser::~response_parser() = default;
response_parser::response_parser(response_parser&&) noexcept = default;
response_parser& response_parser::operator=(response_parser&&) noexcept = default;

response_parser::impl& response_parser::state() {
  if (!impl_) {
    impl_ = std::make_unique<impl>(limits_);
    impl_->framer.set_sink(sink_);
  }
  return *impl_;
}

void response_parser::decode_into(body_sink* sink) {
  sink_ = sink;
  if (impl_) {
    impl_->framer.set_sink(sink);
  }
}

void response_parser::expect(std::string_view method) {
  state();
  // Methods are case-sensitive (RFC 9110 9.1): "head" is not HEAD.
  if (method == "HEAD") {
    impl_->owed.push_back(request_kind::head);
  } else if (method == "CONNECT") {
    impl_->owed.push_back(request_kind::connect);
  } else {
    impl_->owed.push_back(request_kind::other);
  }
}

std::size_t response_parser::pending() const {
  return impl_ ? impl_->owed.size() : 0;
}

parse_result response_parser::parse(std::string_view input) {
  auto& framer = state().framer;
  if (impl_->switched) {
    parse_result opaque;
    opaque.consumed = input.size();
    return opaque;
  }
  if (framer.error()) {
    return {.error = framer.error()};
  }
  if (!framer.at_message_start()) {
    return framer.parse_body(input);
  }
  const std::size_t head_length = framer.find_head(input);
  if (framer.error()) {
    return {.error = framer.error()};
  }
  if (head_length == 0) {
    return {};
  }

  const std::string_view head = input.substr(0, head_length);
  const request_kind kind = impl_->owed.empty() ? request_kind::other : impl_->owed.front();
  // Whether a body follows depends on the request; Beast must be told before
  // it sees the status line, so read the status here.
  const unsigned status = peek_status(head);
  const bool tunnel = kind == request_kind::connect && status / 100 == 2;
  const bool skip_body = kind == request_kind::head || tunnel;

  parse_result result = framer.parse_head(head, skip_body);
  if (result.error) {
    return result;
  }
  const unsigned parsed_status = framer.head().status;
  if (parsed_status == 101 || tunnel) {
    impl_->switched = true;
  }
  if (parsed_status >= 200 || parsed_status == 101) {
    if (!impl_->owed.empty()) {
      impl_->owed.pop_front();
    }
  }
  return result;
}

const response_head& response_parser::head() const {
  static const response_head none;
  return impl_ ? impl_->framer.head() : none;
}

bool response_parser::switched_protocols() const {
  return impl_ && impl_->switched;
}

bool response_parser::body_until_close() const {
  return impl_ && impl_->framer.body_until_close();
}

void response_parser::release() {
  if (!impl_) {
    return;
  }
  if (impl_->owed.empty() && !impl_->switched && impl_->framer.at_message_start() &&
      !impl_->framer.error()) {
    impl_.reset();
  } else {
    impl_->framer.release();
  }
}

}  // namespace porthole::http
