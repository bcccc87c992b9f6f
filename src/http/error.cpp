#include "http/error.h"

#include <boost/beast/http/error.hpp>
#include <string>

namespace porthole::http {
namespace {

struct rule {
  const char* name;
  const char* message;
};

rule describe(error e) {
  switch (e) {
    case error::too_many_fields:
      return {"too_many_fields", "the request has more header fields than this server accepts"};
    case error::bare_line_ending:
      return {"bare_line_ending", "a line of the request head does not end in CRLF"};
    case error::obs_fold:
      return {"obs_fold", "a header line starts with whitespace (obsolete line folding)"};
    case error::space_before_colon:
      return {"space_before_colon", "whitespace between a header name and its colon"};
    case error::bad_field_name:
      return {"bad_field_name", "a header name is empty or has a character a name cannot have"};
    case error::bad_field_value:
      return {"bad_field_value", "a header value holds a control character"};
    case error::bad_request_line:
      return {"bad_request_line", "the request line is not METHOD SP target SP HTTP/1.x"};
    case error::bad_target:
      return {"bad_target", "the request target is not valid"};
    case error::unsupported_version:
      return {"unsupported_version", "only HTTP/1.0 and HTTP/1.1 are served on this port"};
    case error::bad_content_length:
      return {"bad_content_length", "Content-Length is not a decimal number of bytes"};
    case error::duplicate_content_length:
      return {"duplicate_content_length", "more than one Content-Length"};
    case error::content_length_and_chunked:
      return {"content_length_and_transfer_encoding", "both Content-Length and Transfer-Encoding"};
    case error::bad_transfer_encoding:
      return {"bad_transfer_encoding", "Transfer-Encoding must be chunked, once"};
    case error::unsupported_transfer_coding:
      return {"unsupported_transfer_coding", "only the chunked transfer coding is supported"};
    case error::transfer_encoding_in_http10:
      return {"transfer_encoding_in_http10", "Transfer-Encoding on an HTTP/1.0 request"};
    case error::missing_host:
      return {"missing_host", "the request has no Host header"};
    case error::duplicate_host:
      return {"duplicate_host", "more than one Host header"};
    case error::bad_host:
      return {"bad_host", "the Host header is not a host name with an optional port"};
    case error::host_mismatch:
      return {"host_mismatch", "the request target names another host than the Host header"};
  }
  return {"", "unknown HTTP error"};
}

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "porthole.http"; }
  std::string message(int ev) const override { return describe(static_cast<error>(ev)).message; }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

const char* rule_name(const boost::system::error_code& ec) noexcept {
  if (ec.category() != error_category()) {
    return "";
  }
  return describe(static_cast<error>(ec.value())).name;
}

unsigned status_of(const boost::system::error_code& ec) noexcept {
  if (ec == boost::beast::http::error::header_limit || ec == error::too_many_fields) {
    return 431;
  }
  if (ec == error::unsupported_version) {
    return 505;
  }
  if (ec == error::unsupported_transfer_coding) {
    return 501;
  }
  return 400;
}

}  // namespace porthole::http
