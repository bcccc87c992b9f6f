#include "http/forwarding.h"

#include <openssl/crypto.h>

#include <array>
#include <optional>
#include <string>

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

enum class forwarded_field { none, for_, proto, host };

forwarded_field classify(std::string_view line) {
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return forwarded_field::none;
  }
  const std::string_view name = line.substr(0, colon);
  if (iequals(name, "X-Forwarded-For")) {
    return forwarded_field::for_;
  }
  if (iequals(name, "X-Forwarded-Proto")) {
    return forwarded_field::proto;
  }
  if (iequals(name, "X-Forwarded-Host")) {
    return forwarded_field::host;
  }
  return forwarded_field::none;
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

std::string add_forwarded_fields(std::string_view head, const forwarded_for& f) {
  // First pass: which X-Forwarded-For line, if any, gets the client appended.
  // Several are one list (RFC 9110 5.3), so the last one ends it.
  std::size_t last_for_line = 0;  // 0: none (line 0 is the request line)
  {
    std::string_view rest = head;
    next_line(rest);
    for (std::size_t index = 1; !rest.empty(); ++index) {
      const head_line line = next_line(rest);
      if (line.content.empty()) {
        break;
      }
      if (classify(line.content) == forwarded_field::for_) {
        last_for_line = index;
      }
    }
  }

  std::string out;
  out.reserve(head.size() + 64 + f.client_ip.size() + f.proto.size() + f.host.size());
  std::string_view rest = head;
  const head_line request_line = next_line(rest);
  out.append(request_line.content).append(request_line.terminator);

  auto append_new_fields = [&] {
    if (last_for_line == 0 && !f.client_ip.empty()) {
      out += "X-Forwarded-For: ";
      append_field_value(out, f.client_ip);
      out += "\r\n";
    }
    if (!f.proto.empty()) {
      out += "X-Forwarded-Proto: ";
      append_field_value(out, f.proto);
      out += "\r\n";
    }
    if (!f.host.empty()) {
      out += "X-Forwarded-Host: ";
      append_field_value(out, f.host);
      out += "\r\n";
    }
  };

  // A line folded onto a dropped field (obs-fold) is dropped with it; the
  // client is appended to the last line of the last X-Forwarded-For.
  bool dropping = false;
  bool in_last_for = false;
  for (std::size_t index = 1; !rest.empty(); ++index) {
    const std::string_view before = rest;
    const head_line line = next_line(rest);
    if (line.content.empty()) {
      append_new_fields();
      out.append(before);  // the empty line, and whatever the caller left after it
      return out;
    }
    if (!is_ows(line.content.front())) {
      const forwarded_field kind = classify(line.content);
      dropping = kind == forwarded_field::proto || kind == forwarded_field::host;
      in_last_for = index == last_for_line;
    }
    if (dropping) {
      continue;
    }
    const bool field_ends = rest.empty() || !is_ows(rest.front());
    if (in_last_for && field_ends && !f.client_ip.empty()) {
      std::string_view content = line.content;
      while (!content.empty() && is_ows(content.back())) {
        content.remove_suffix(1);
      }
      out.append(content);
      out += (content.empty() || content.back() == ':') ? " " : ", ";
      append_field_value(out, f.client_ip);
      out.append(line.terminator.empty() ? std::string_view{"\r\n"} : line.terminator);
      continue;
    }
    out.append(line.content).append(line.terminator);
  }
  // No empty line: not a whole head. Give it the fields and the end it lacks.
  append_new_fields();
  out += "\r\n";
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
