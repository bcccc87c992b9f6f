#include "http/request_rules.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

#include "http/ascii.h"
#include "http/error.h"
#include "http/forwarding.h"

namespace porthole::http {

namespace {

using boost::system::error_code;

// Splits off the CRLF-terminated line at the front of `rest` (without it).
std::string_view take_line(std::string_view& rest) {
  const std::size_t end = rest.find("\r\n");
  if (end == std::string_view::npos) {
    const std::string_view line = rest;
    rest = {};
    return line;
  }
  const std::string_view line = rest.substr(0, end);
  rest.remove_prefix(end + 2);
  return line;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool all_digits(std::string_view s) {
  for (const char c : s) {
    if (!is_digit(c)) {
      return false;
    }
  }
  return true;
}

// RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT.
std::optional<unsigned> parse_version(std::string_view v) {
  if (v.size() != 8 || !v.starts_with("HTTP/") || !is_digit(v[5]) || v[6] != '.' ||
      !is_digit(v[7])) {
    return std::nullopt;
  }
  return static_cast<unsigned>((v[5] - '0') * 10 + (v[7] - '0'));
}

// 1*DIGIT that fits in 64 bits.
bool is_content_length(std::string_view v) {
  if (v.empty() || !all_digits(v)) {
    return false;
  }
  std::uint64_t n = 0;
  for (const char c : v) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (n > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
      return false;
    }
    n = n * 10 + d;
  }
  return true;
}

// uri-host [":" port], where uri-host is an IP literal in brackets or a
// reg-name without the characters that would make it a list or a path.
bool is_host(std::string_view v) {
  if (v.empty()) {
    return false;
  }
  std::string_view port;
  if (v.front() == '[') {
    const std::size_t close = v.find(']');
    if (close == std::string_view::npos || close == 1) {
      return false;
    }
    for (const char c : v.substr(1, close - 1)) {
      const bool hex = is_digit(c) || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f');
      if (!hex && c != ':' && c != '.') {
        return false;
      }
    }
    const std::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return false;
      }
      port = rest.substr(1);
    }
  } else {
    const std::size_t colon = v.find(':');
    const std::string_view name = v.substr(0, colon);
    if (name.empty()) {
      return false;
    }
    for (const char c : name) {
      const bool alnum = is_digit(c) || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z');
      if (!alnum && std::string_view{"-._~%!$&'()*+;="}.find(c) == std::string_view::npos) {
        return false;
      }
    }
    if (colon != std::string_view::npos) {
      port = v.substr(colon + 1);
    }
  }
  return port.size() <= 5 && all_digits(port);
}

// Transfer-Encoding must be exactly one coding, chunked: a coding before it
// is one this relay does not decode (501), anything else leaves the length
// unknowable (RFC 9112 6.3: 400).
error_code check_transfer_encoding(std::string_view value) {
  std::size_t codings = 0;
  bool last_is_chunked = false;
  bool saw_chunked = false;
  for (;;) {
    const std::size_t comma = value.find(',');
    const std::string_view coding = trim_ows(value.substr(0, comma));
    if (!is_token(coding)) {
      return error::bad_transfer_encoding;
    }
    ++codings;
    last_is_chunked = iequals(coding, "chunked");
    if (last_is_chunked && saw_chunked) {
      return error::bad_transfer_encoding;
    }
    saw_chunked = saw_chunked || last_is_chunked;
    if (comma == std::string_view::npos) {
      break;
    }
    value.remove_prefix(comma + 1);
  }
  if (!last_is_chunked) {
    return error::bad_transfer_encoding;
  }
  if (codings > 1) {
    return error::unsupported_transfer_coding;
  }
  return {};
}

// The authority of an absolute-form target ("http://host:port/path"), or
// nullopt if the target is not a valid one.
std::optional<std::string_view> absolute_authority(std::string_view target) {
  const std::size_t sep = target.find("://");
  if (sep == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view scheme = target.substr(0, sep);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) {
    return std::nullopt;
  }
  std::string_view rest = target.substr(sep + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  // userinfo ("user@host") would let the two sides read different hosts.
  if (!is_host(authority)) {
    return std::nullopt;
  }
  return authority;
}

struct framing_fields {
  std::size_t content_lengths = 0;
  std::string_view content_length;
  std::size_t transfer_encodings = 0;
  std::string_view transfer_encoding;
  std::size_t hosts = 0;
  std::string_view host;
};

}  // namespace

bool is_field_value(std::string_view value) {
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

// memchr finds each CR and LF (the line endings of a head are few, its
// other bytes many): a byte-by-byte loop here was a parser's hottest part.
std::size_t find_bare_line_ending(std::string_view input, std::size_t from) {
  std::size_t first = std::string_view::npos;
  const char* const data = input.data();
  const std::size_t size = input.size();
  for (std::size_t i = from; i < size;) {
    const void* lf = std::memchr(data + i, '\n', size - i);
    if (lf == nullptr) {
      break;
    }
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(lf) - data);
    if (at == 0 || data[at - 1] != '\r') {
      first = at;
      break;
    }
    i = at + 1;
  }
  const std::size_t cr_end = std::min(size, first);
  for (std::size_t i = from; i < cr_end;) {
    const void* cr = std::memchr(data + i, '\r', cr_end - i);
    if (cr == nullptr) {
      break;
    }
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(cr) - data);
    if (at + 1 < size && data[at + 1] != '\n') {
      return at;
    }
    i = at + 1;
  }
  return first;
}

error_code check_request_head(std::string_view head, std::size_t max_fields) {
  if (find_bare_line_ending(head, 0) != std::string_view::npos ||
      (!head.empty() && head.back() == '\r')) {
    return error::bare_line_ending;
  }
  std::string_view rest = head;

  // request-line = method SP request-target SP HTTP-version
  const std::string_view request_line = take_line(rest);
  const std::size_t sp1 = request_line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return error::bad_request_line;
  }
  const std::string_view method = request_line.substr(0, sp1);
  const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version_text = request_line.substr(sp2 + 1);
  if (!is_token(method) || target.empty()) {
    return error::bad_request_line;
  }
  const std::optional<unsigned> version = parse_version(version_text);
  if (!version) {
    return error::bad_request_line;
  }
  if (*version != 10 && *version != 11) {
    return error::unsupported_version;
  }
  for (const char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return error::bad_target;
    }
  }

  framing_fields ff;
  std::size_t fields = 0;
  for (;;) {
    const std::string_view line = take_line(rest);
    if (line.empty()) {
      break;
    }
    if (is_ows(line.front())) {
      return error::obs_fold;
    }
    if (++fields > max_fields) {
      return error::too_many_fields;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return error::bad_field_name;
    }
    const std::string_view name = line.substr(0, colon);
    if (!name.empty() && is_ows(name.back())) {
      return error::space_before_colon;
    }
    if (!is_token(name)) {
      return error::bad_field_name;
    }
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) {
      return error::bad_field_value;
    }
    if (iequals(name, "content-length")) {
      ++ff.content_lengths;
      ff.content_length = value;
    } else if (iequals(name, "transfer-encoding")) {
      ++ff.transfer_encodings;
      ff.transfer_encoding = value;
    } else if (iequals(name, "host")) {
      ++ff.hosts;
      ff.host = value;
    }
  }

  if (ff.content_lengths > 0 && ff.transfer_encodings > 0) {
    return error::content_length_and_chunked;
  }
  if (ff.content_lengths > 1 || ff.content_length.find(',') != std::string_view::npos) {
    return error::duplicate_content_length;
  }
  if (ff.content_lengths == 1 && !is_content_length(ff.content_length)) {
    return error::bad_content_length;
  }
  if (ff.transfer_encodings > 0) {
    if (*version == 10) {
      return error::transfer_encoding_in_http10;
    }
    if (ff.transfer_encodings > 1) {
      return error::bad_transfer_encoding;
    }
    if (const error_code ec = check_transfer_encoding(ff.transfer_encoding)) {
      return ec;
    }
  }
  if (ff.hosts > 1) {
    return error::duplicate_host;
  }
  if (ff.hosts == 1 && !ff.host.empty() && !is_host(ff.host)) {
    return error::bad_host;
  }

  // request-target forms (RFC 9112 3.2): which one each method may use.
  if (method == "CONNECT") {
    if (!is_host(target) || target.find(':') == std::string_view::npos) {
      return error::bad_target;
    }
    if (!ff.host.empty() && routing_host(target) != routing_host(ff.host)) {
      return error::host_mismatch;
    }
  } else if (target == "*") {
    if (method != "OPTIONS") {
      return error::bad_target;
    }
  } else if (target.front() != '/') {
    const std::optional<std::string_view> authority = absolute_authority(target);
    if (!authority) {
      return error::bad_target;
    }
    if (!ff.host.empty() && routing_host(*authority) != routing_host(ff.host)) {
      return error::host_mismatch;
    }
  }
  return {};
}

}  // namespace porthole::http
