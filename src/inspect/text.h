#pragma once
// Small conversions of captured bytes for display and export (base64 is in
// http/base64.h).

#include <chrono>
#include <string>
#include <string_view>

namespace porthole::inspect {

/// True when `bytes` is well-formed UTF-8 (no overlong forms, no surrogates).
bool is_utf8(std::string_view bytes);

/// `t` as ISO 8601 in UTC with milliseconds, e.g. "2026-11-25T17:36:43.120Z".
std::string iso8601(std::chrono::sys_time<std::chrono::milliseconds> t);

}  // namespace porthole::inspect
