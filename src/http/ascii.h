#pragma once
// ASCII case folding and token characters for HTTP field names, methods and
// host names (never locale-aware).

#include <string_view>

namespace porthole::http {

inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Optional whitespace (RFC 9110 OWS): a space or a tab.
inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

/// `s` without leading and trailing OWS.
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_ows(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

/// An RFC 9110 tchar: a character of a token (a method, a header name).
inline bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

/// An RFC 9110 token: one or more tchars.
inline bool is_token(std::string_view s) {
  for (const char c : s) {
    if (!is_token_char(c)) {
      return false;
    }
  }
  return !s.empty();
}

/// Case-insensitive ASCII comparison, as HTTP field names are compared.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace porthole::http
