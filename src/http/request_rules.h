#pragma once
// The rules a request head must follow before an edge proxy forwards it:
// RFC 9112 read strictly, so that porthole and the service behind it can
// never disagree on where a request ends (request smuggling) or which host
// it is for. Pure: a head in, the first rule it breaks out.

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string_view>

namespace porthole::http {

/// Checks a whole request head (request line, fields and the empty line, all
/// CRLF-terminated) and returns the first porthole::http::error it breaks, or
/// no error. More than `max_fields` header fields is error::too_many_fields.
///
/// Refused: lines not ending in CRLF, obs-fold, whitespace before a colon,
/// field names that are not tokens, control bytes (NUL included) in values,
/// request lines that are not exactly "METHOD SP target SP HTTP/d.d", versions
/// other than 1.0 and 1.1, targets with control bytes or spaces or in a form
/// the method may not use, a Content-Length that is not one decimal number
/// (several, a list, a sign, hex, overflow), Content-Length together with
/// Transfer-Encoding, Transfer-Encoding other than a single "chunked" (or on
/// HTTP/1.0), a repeated or malformed Host, and an absolute-form or CONNECT
/// target that names another host than Host. A missing Host is left to the
/// caller (a relay that routes by Host refuses it; a capture need not).
boost::system::error_code check_request_head(std::string_view head, std::size_t max_fields);

/// True if `value` may be a field value: no control byte but HTAB (obs-text,
/// bytes 0x80-0xFF, is allowed).
bool is_field_value(std::string_view value);

/// The offset of the first line ending in `input` that is not CRLF (an LF
/// without a CR before it, or a CR followed by something else than LF),
/// looking at bytes from `from` on; npos if there is none. A CR at the very
/// end is not judged: its LF may still come.
std::size_t find_bare_line_ending(std::string_view input, std::size_t from);

}  // namespace porthole::http
