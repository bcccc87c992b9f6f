#include "http/forwarding.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "http/ascii.h"
#include "http/base64.h"

namespace porthole::http {

namespace {

// Appends `value` without the characters that would end a header line.
void append_field_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c != '\r' && c != '\n' && c != '\0') {
      out.push_back(c);
    }
  }
}

void append_html_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
        break;
    }
  }
}

// One line of a head: its content and its terminator ("\r\n", "\n" or none).
struct head_line {
  std::string_view content;
  std::string_view terminator;
};

// Splits off the line at the front of `rest`.
head_line next_line(std::string_view& rest) {
  const std::size_t lf = rest.find('\n');
  if (lf == std::string_view::npos) {
    head_line line{rest, {}};
    rest = {};
    return line;
  }
  std::size_t end = lf;
  if (end > 0 && rest[end - 1] == '\r') {
    --end;
  }
  head_line line{rest.substr(0, end), rest.substr(end, lf + 1 - end)};
  rest.remove_prefix(lf + 1);
  return line;
}

// A field as the client sent it.
struct raw_field {
  std::string_view name;   // before the colon (the whole line if it has none)
  std::string value;       // without surrounding OWS; folded lines joined by a space
  std::string_view bytes;  // its lines, folded ones included, with their terminators
};

struct split_head {
  std::string_view request_line;  // with its terminator
  std::vector<raw_field> fields;
  std::string_view end;  // the empty line and whatever follows; empty if there is none
};

split_head split(std::string_view head) {
  split_head s;
  std::string_view rest = head;
  next_line(rest);
  s.request_line = head.substr(0, head.size() - rest.size());
  while (!rest.empty()) {
    const std::string_view before = rest;
    const head_line line = next_line(rest);
    if (line.content.empty()) {
      s.end = before;
      break;
    }
    const std::string_view bytes = before.substr(0, before.size() - rest.size());
    if (is_ows(line.content.front()) && !s.fields.empty()) {
      // obs-fold: the line continues the field above it.
      raw_field& f = s.fields.back();
      f.bytes = {f.bytes.data(), f.bytes.size() + bytes.size()};
      const std::string_view more = trim_ows(line.content);
      if (!more.empty()) {
        f.value += f.value.empty() ? "" : " ";
        f.value += more;
      }
      continue;
    }
    const std::size_t colon = line.content.find(':');
    raw_field f{.name = line.content.substr(0, colon), .value = {}, .bytes = bytes};
    if (colon != std::string_view::npos) {
      f.value = trim_ows(line.content.substr(colon + 1));
    }
    s.fields.push_back(std::move(f));
  }
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
  return out;
}

// Compares names as a CGI server maps them to HTTP_* variables.
bool same_cgi_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] == '_' ? '-' : ascii_lower(a[i]);
    const char y = b[i] == '_' ? '-' : ascii_lower(b[i]);
    if (x != y) {
      return false;
    }
  }
  return true;
}

// Names, other than the X-Forwarded-* family, that applications read for the
// client's address or the request's scheme (Rack, chi's RealIP,
// django-ipware, Node's request-ip ...). Lower case, with dashes.
constexpr std::array<std::string_view, 10> other_edge_fields = {
    "forwarded",           "x-real-ip",   "x-client-ip",   "client-ip",       "true-client-ip",
    "x-cluster-client-ip", "x-forwarded", "forwarded-for", "front-end-https", "x-url-scheme",
};

// Connection options the tunnel carries end to end: the service's connection
// is the public one stretched, so they mean there what they meant here, and
// public_http.cpp reads close, keep-alive and upgrade from the same head.
constexpr std::array<std::string_view, 4> end_to_end_options = {"close", "keep-alive", "upgrade",
                                                                "te"};

// Fields that frame or route the request: never dropped, whatever Connection
// says (dropping Content-Length would let the body be read as a request;
// Beast reads close, keep-alive and upgrade from Proxy-Connection too).
constexpr std::array<std::string_view, 4> framing_fields = {
    "host", "content-length", "transfer-encoding", "proxy-connection"};

template <std::size_t N>
bool is_one_of(std::string_view name, const std::array<std::string_view, N>& names) {
  return std::any_of(names.begin(), names.end(),
                     [name](std::string_view n) { return iequals(name, n); });
}

// Calls `element(token)` for each non-empty element of a comma-separated list.
template <typename F>
void for_each_element(std::string_view list, F element) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty()) {
      element(item);
    }
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
}

// The port of a Host value ("a.example:8080", "[::1]:8080"), or empty.
std::string_view port_of(std::string_view host) {
  host = trim_ows(host);
  std::size_t colon = std::string_view::npos;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos && close + 1 < host.size() && host[close + 1] == ':') {
      colon = close + 1;
    }
  } else if (host.find(':') == host.rfind(':')) {
    colon = host.find(':');
  }
  if (colon == std::string_view::npos) {
    return {};
  }
  const std::string_view port = host.substr(colon + 1);
  const bool digits =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  return digits ? port : std::string_view{};
}

// What X-Forwarded-Port says: the port the client named in Host, else the
// scheme's.
std::string_view forwarded_port(const forwarded_for& f) {
  if (const std::string_view port = port_of(f.host); !port.empty()) {
    return port;
  }
  if (f.proto == "https") {
    return "443";
  }
  return f.proto == "http" ? "80" : "";
}

// An RFC 7239 value: a token as it is, anything else a quoted-string.
void append_forwarded_value(std::string& out, std::string_view value, bool brackets = false) {
  if (!brackets && is_token(value)) {
    out.append(value);
    return;
  }
  out += brackets ? "\"[" : "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
    }
    if (c != '\r' && c != '\n' && c != '\0') {
      out.push_back(c);
    }
  }
  out += brackets ? "]\"" : "\"";
}

// The Forwarded element of this hop (RFC 7239 4): for=, proto=, host=.
std::string forwarded_element(const forwarded_for& f) {
  std::string element;
  auto pair = [&element](std::string_view key) -> std::string& {
    element += element.empty() ? "" : ";";
    element += key;
    element += '=';
    return element;
  };
  if (!f.client_ip.empty()) {
    // An IPv6 address is written in brackets, hence quoted (RFC 7239 6).
    append_forwarded_value(pair("for"), f.client_ip, f.client_ip.find(':') != std::string::npos);
  }
  if (!f.proto.empty()) {
    append_forwarded_value(pair("proto"), f.proto);
  }
  if (!f.host.empty()) {
    append_forwarded_value(pair("host"), trim_ows(f.host));
  }
  return element;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ");
  append_field_value(out, value);
  out += "\r\n";
}

}  // namespace

std::string routing_host(std::string_view host_header) {
  std::string_view host = trim_ows(host_header);
  if (!host.empty() && host.front() == '[') {
    // An IPv6 literal: the port, if any, follows the closing bracket.
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos) {
      host = host.substr(0, close + 1);
    }
  } else {
    const std::size_t colon = host.find(':');
    // More than one colon is a bare IPv6 address, which has no port to remove.
    if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
      host = host.substr(0, colon);
    }
    // "example.com." names the same host as "example.com".
    if (!host.empty() && host.back() == '.') {
      host.remove_suffix(1);
    }
  }
  std::string result(host.size(), '\0');
  for (std::size_t i = 0; i < host.size(); ++i) {
    result[i] = ascii_lower(host[i]);
  }
  return result;
}

bool basic_auth_matches(std::string_view authorization, std::string_view user_pass) {
  constexpr std::string_view scheme = "basic";
  const std::string_view value = trim_ows(authorization);
  if (value.size() <= scheme.size() || !iequals(value.substr(0, scheme.size()), scheme) ||
      !is_ows(value[scheme.size()])) {
    return false;
  }
  const std::string_view token = trim_ows(value.substr(scheme.size()));
  const std::optional<std::string> decoded = from_base64(token);
  if (!decoded || decoded->size() != user_pass.size()) {
    return false;
  }
  return CRYPTO_memcmp(decoded->data(), user_pass.data(), user_pass.size()) == 0;
}

bool is_edge_field(std::string_view name) {
  constexpr std::string_view family = "x-forwarded-";
  if (name.size() > family.size() && same_cgi_name(name.substr(0, family.size()), family)) {
    return true;
  }
  return std::any_of(other_edge_fields.begin(), other_edge_fields.end(),
                     [name](std::string_view n) { return same_cgi_name(name, n); });
}

namespace {

/// Rewrites the Connection fields (and Proxy-Connection with
/// `proxy_connection_too`) of a head: `edit` gets each field's options,
/// trimmed, and keeps those it leaves; a field left with none is dropped.
/// `edit` returns false to give up (the result is then empty). Every other
/// line is kept as it is, the empty line included.
template <class Edit>
std::string edit_connection_fields(std::string_view head, bool proxy_connection_too, Edit edit) {
  std::string out;
  std::size_t pos = 0;
  bool first_line = true;
  while (pos < head.size()) {
    std::size_t end = head.find("\r\n", pos);
    end = end == std::string_view::npos ? head.size() : end + 2;
    const std::string_view line = head.substr(pos, end - pos);
    pos = end;
    const std::size_t colon = line.find(':');
    const std::string_view name = colon == std::string_view::npos ? "" : line.substr(0, colon);
    if (first_line || !(iequals(name, "connection") ||
                        (proxy_connection_too && iequals(name, "proxy-connection")))) {
      first_line = false;
      out += line;
      continue;
    }
    std::vector<std::string_view> options;
    std::string_view value = line.substr(colon + 1);
    value.remove_suffix(value.ends_with("\r\n") ? 2 : 0);
    while (!value.empty()) {
      const std::size_t comma = value.find(',');
      const std::string_view option =
          trim_ows(comma == std::string_view::npos ? value : value.substr(0, comma));
      value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
      if (!option.empty()) {
        options.push_back(option);
      }
    }
    const std::size_t before = options.size();
    if (!edit(options)) {
      return {};
    }
    if (options.size() == before) {
      out += line;
      continue;
    }
    if (!options.empty()) {
      out += name;
      out += ": ";
      for (std::size_t k = 0; k < options.size(); ++k) {
        out += k == 0 ? "" : ", ";
        out += options[k];
      }
      out += "\r\n";
    }
  }
  return out;
}

}  // namespace

std::string without_close_option(std::string_view head) {
  bool found = false;
  std::string out =
      edit_connection_fields(head, true, [&found](std::vector<std::string_view>& options) {
        found |= std::erase_if(options, [](std::string_view o) { return iequals(o, "close"); }) > 0;
        return true;
      });
  return found ? out : std::string();
}

std::string with_close_option(std::string_view head) {
  std::string out = edit_connection_fields(head, false, [](std::vector<std::string_view>& options) {
    if (std::ranges::any_of(options, [](std::string_view o) { return iequals(o, "close"); })) {
      return false;
    }
    std::erase_if(options, [](std::string_view o) { return iequals(o, "keep-alive"); });
    return true;
  });
  if (out.size() < 4 || !out.ends_with("\r\n\r\n")) {
    return {};
  }
  out.insert(out.size() - 2, "Connection: close\r\n");
  return out;
}

std::string add_forwarded_fields(std::string_view head, const forwarded_for& f) {
  const split_head s = split(head);

  // The fields the client made hop-by-hop, lower case, sorted: a head may
  // hold thousands of fields and of options.
  std::vector<std::string> hop_by_hop;
  for (const raw_field& field : s.fields) {
    if (iequals(field.name, "connection")) {
      for_each_element(field.value, [&](std::string_view option) {
        if (!is_one_of(option, end_to_end_options) && !is_one_of(option, framing_fields)) {
          hop_by_hop.push_back(lower(option));
        }
      });
    }
  }
  std::sort(hop_by_hop.begin(), hop_by_hop.end());
  hop_by_hop.erase(std::unique(hop_by_hop.begin(), hop_by_hop.end()), hop_by_hop.end());
  auto is_hop_by_hop = [&](std::string_view name) {
    return !hop_by_hop.empty() &&
           std::binary_search(hop_by_hop.begin(), hop_by_hop.end(), lower(name));
  };
  auto is_client_for_list = [&](const raw_field& field) {
    return iequals(field.name, "x-forwarded-for") && !is_hop_by_hop(field.name);
  };
  const auto last_for = std::find_if(s.fields.rbegin(), s.fields.rend(), is_client_for_list).base();

  std::string out;
  out.reserve(head.size() + 160 + 3 * f.client_ip.size() + 2 * f.host.size());
  out.append(s.request_line);
  for (auto it = s.fields.begin(); it != s.fields.end(); ++it) {
    const raw_field& field = *it;
    if (iequals(field.name, "connection")) {
      std::string kept;
      bool all_kept = true;
      for_each_element(field.value, [&](std::string_view option) {
        if (is_one_of(option, end_to_end_options)) {
          kept += kept.empty() ? "" : ", ";
          kept += option;
        } else {
          all_kept = false;
        }
      });
      if (all_kept) {
        out.append(field.bytes);
      } else if (!kept.empty()) {
        append_field(out, field.name, kept);
      }
      continue;
    }
    if (is_hop_by_hop(field.name)) {
      continue;
    }
    if (is_client_for_list(field) && !f.client_ip.empty() && it + 1 == last_for) {
      // The client's list, then this hop (RFC 7239 order: the last is the nearest).
      out.append(field.name).append(": ");
      if (!field.value.empty()) {
        out.append(field.value).append(", ");
      }
      append_field_value(out, f.client_ip);
      out += "\r\n";
      continue;
    }
    if (is_edge_field(field.name) && !is_client_for_list(field)) {
      continue;
    }
    if (same_cgi_name(field.name, "proxy")) {
      continue;  // httpoxy: CGI turns it into HTTP_PROXY, which HTTP clients read as their proxy
    }
    out.append(field.bytes);
  }

  if (last_for == s.fields.begin() && !f.client_ip.empty()) {
    append_field(out, "X-Forwarded-For", f.client_ip);
  }
  if (!f.proto.empty()) {
    append_field(out, "X-Forwarded-Proto", f.proto);
  }
  if (!f.host.empty()) {
    append_field(out, "X-Forwarded-Host", trim_ows(f.host));
  }
  if (const std::string_view port = forwarded_port(f); !port.empty()) {
    append_field(out, "X-Forwarded-Port", port);
  }
  if (!f.client_ip.empty()) {
    append_field(out, "X-Real-IP", f.client_ip);
  }
  if (const std::string element = forwarded_element(f); !element.empty()) {
    append_field(out, "Forwarded", element);
  }
  // No empty line: not a whole head. Give it the end it lacks.
  out.append(s.end.empty() ? std::string_view{"\r\n"} : s.end);
  return out;
}

std::string error_response(unsigned status, std::string_view reason, std::string_view message,
                           bool keep_alive, std::string_view extra_fields) {
  const std::string status_text = std::to_string(status);

  std::string body;
  body.reserve(256 + 2 * reason.size() + message.size());
  body += "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>";
  body += status_text;
  body += ' ';
  append_html_escaped(body, reason);
  body += "</title></head>\n<body><h1>";
  body += status_text;
  body += ' ';
  append_html_escaped(body, reason);
  body += "</h1>\n<p>";
  append_html_escaped(body, message);
  body += "</p>\n<hr><p>porthole</p></body></html>\n";

  std::string response;
  response.reserve(160 + reason.size() + extra_fields.size() + body.size());
  response += "HTTP/1.1 ";
  response += status_text;
  response += ' ';
  append_field_value(response, reason);
  response += "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ";
  response += std::to_string(body.size());
  response += "\r\n";
  if (!keep_alive) {
    response += "Connection: close\r\n";
  }
  response += extra_fields;
  response += "\r\n";
  response += body;
  return response;
}

}  // namespace porthole::http
