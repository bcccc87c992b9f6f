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
/// method, target, headers and body as captured. Host, Content-Length and
/// Transfer-Encoding are left to curl, the forwarding fields
/// (http::is_edge_field: X-Forwarded-*, Forwarded, X-Real-IP ...) to the
/// server, which sets them again; a chunked body is sent de-chunked.
/// Bytes that are not printable are written with bash's $'\xNN' quoting, so
/// the command sends exactly the captured bytes. A body cut at capture is
/// sent as far as it was kept, and a comment line before the command says so.
std::string to_curl(const exchange& e);

/// An HTTP Archive 1.2 document holding `exchanges` in the order given.
/// Content is the decoded body (text, or base64 with "encoding": "base64");
/// an exchange that got no response has status 0 and its error in
/// "_error", as HAR allows for custom fields.
nlohmann::json to_har(std::span<const exchange> exchanges, std::string_view creator_version);

}  // namespace porthole::inspect
