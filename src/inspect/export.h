#pragma once
// Captured exchanges in the forms other tools read: a curl command line, and
// an HTTP Archive (HAR 1.2, http://www.softwareishard.com/blog/har-12-spec/).

#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>

#include "inspect/exchange.h"

namespace porthole::inspect {

/// A shell command (bash) that sends `e`'s request again to its public URL:
/// method, target, header fields and body bytes as captured, and nothing
/// else. Every value is one single-quoted word ('...', or $'...' with \xNN
/// for bytes that are not printable ASCII), so nothing in it is expanded, and
/// each follows the option that takes it, so none is read as an option.
/// - The URL is given with --url, the public URL's scheme and host with the
///   target; --globoff and --path-as-is when curl would glob ([], {}) or
///   squash dot segments; a target a URL cannot carry ('#', "*",
///   absolute-form) goes with --request-target.
/// - Host, Content-Length and Transfer-Encoding are left to curl, the
///   forwarding fields (http::is_edge_field: X-Forwarded-*, Forwarded,
///   X-Real-IP ...) to the server, which sets them again; curl's
///   own User-Agent, Accept (and with a body Content-Type, Expect) are
///   removed ("-H 'Name:'") when the request had none. A header curl cannot
///   send as it is (a name that is not a token, which could start with '@'
///   and make curl read a file; a line break or NUL) is left out, and a
///   comment line before the command names it.
/// - The body goes with --data-raw (never read from a file); one with a NUL
///   or over 64 KiB (longer than an argument may be) is written by
///   `printf '%b'` into `curl --data-binary @-`. A chunked body is sent
///   de-chunked; one cut at capture as far as it was kept, with a comment.
/// - An exchange whose public URL is not http:// or https:// and a host, or
///   whose method is not a token, gets only a comment line saying why.
std::string to_curl(const exchange& e);

/// An HTTP Archive 1.2 document holding `exchanges` in the order given.
/// Content is the decoded body (text, or base64 with "encoding": "base64");
/// an exchange that got no response has status 0 and its error in
/// "_error", as HAR allows for custom fields.
nlohmann::json to_har(std::span<const exchange> exchanges, std::string_view creator_version);

}  // namespace porthole::inspect
