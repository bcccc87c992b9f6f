#pragma once
// Standard base64 (RFC 4648 section 4, padded), as Basic credentials and the
// inspector's bodies use it.

#include <optional>
#include <string>
#include <string_view>

namespace porthole::http {

/// `bytes` in base64 with padding.
std::string base64(std::string_view bytes);

/// The bytes of `text`, or none unless it is strict padded base64: only the
/// base64 alphabet, a length that is a multiple of 4, '=' only at the end.
std::optional<std::string> from_base64(std::string_view text);

}  // namespace porthole::http
