#pragma once
// application/x-www-form-urlencoded text, as query strings and form bodies
// carry it.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace porthole::http {

/// '+' is a space, "%XX" a byte; a malformed escape stays as it is.
std::string form_decode(std::string_view s);

/// "a=1&b=x+y" as decoded (name, value) pairs, in order, repeats kept; empty
/// pairs ("a=1&&b") are skipped, a pair without '=' has an empty value.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);

}  // namespace porthole::http
