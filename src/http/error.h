#pragma once
// Why porthole refuses a request head, as an error_code category. Each error
// names one rule; status_of() gives the status the client is answered with.

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace porthole::http {

/// A rule a request head broke. Every one of them ends the connection: after
/// it nobody can tell where the next request would start.
enum class error {
  too_many_fields = 1,          ///< more header fields than parser_limits::max_fields (431)
  bare_line_ending,             ///< a line ends in LF or CR alone, not CRLF
  obs_fold,                     ///< a header line starts with a space or a tab
  space_before_colon,           ///< whitespace between a field name and its colon
  bad_field_name,               ///< a field name is empty or not a token
  bad_field_value,              ///< a field value holds NUL or another control byte
  bad_request_line,             ///< not "METHOD SP target SP HTTP/x.y"
  bad_target,                   ///< the target has a control byte or a form not allowed here
  unsupported_version,          ///< HTTP/x.y other than 1.0 and 1.1 (505)
  bad_content_length,           ///< Content-Length is not one decimal number that fits
  duplicate_content_length,     ///< more than one Content-Length, or a list of them
  content_length_and_chunked,   ///< both Content-Length and Transfer-Encoding
  bad_transfer_encoding,        ///< Transfer-Encoding whose last coding is not chunked
  unsupported_transfer_coding,  ///< a transfer coding before chunked (501)
  transfer_encoding_in_http10,  ///< Transfer-Encoding on an HTTP/1.0 request
  missing_host,                 ///< an HTTP/1.1 request without Host
  duplicate_host,               ///< more than one Host
  bad_host,                     ///< Host is not host[:port]
  host_mismatch,                ///< an absolute-form target names another host than Host
};

/// The category of porthole::http::error ("porthole.http").
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// A short fixed name of the rule for logs ("obs_fold"), or "" for a code
/// that is not of this category.
const char* rule_name(const boost::system::error_code& ec) noexcept;

/// The status a client is answered with for a request refused with `ec`:
/// 431 for heads too large (Beast's header_limit too), 505, 501, else 400.
unsigned status_of(const boost::system::error_code& ec) noexcept;

}  // namespace porthole::http

template <>
struct boost::system::is_error_code_enum<porthole::http::error> : std::true_type {};
