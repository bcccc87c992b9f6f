#include "inspect/export.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/ascii.h"
#include "http/base64.h"
#include "http/form.h"
#include "http/forwarding.h"
#include "inspect/http_capture.h"
#include "inspect/text.h"

namespace porthole::inspect {
namespace {

using json = nlohmann::json;

// A byte written as it is inside a quoted bash word ($'...') or printf's
// %b argument: printable ASCII but the quote, '!' (history expansion) and the
// backslash, which the callers escape themselves.
bool stays_as_it_is(unsigned char c) {
  return c >= 0x20 && c < 0x7f && c != '\'' && c != '!';
}

// `s` as one bash word: '...' when every byte is printable ASCII, else $'...'
// with escapes, which bash turns back into the same bytes. Nothing in either
// is expanded. In $'...' a quote and '!' are escapes too, so that a shell
// scanning for history expansion without knowing $'...' sees no quote end
// and no '!' there.
std::string shell_quote(std::string_view s) {
  bool plain = true;
  for (const unsigned char c : s) {
    plain = plain && c >= 0x20 && c < 0x7f;
  }
  std::string out;
  if (plain) {
    out = "'";
    for (const char c : s) {
      out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
  }
  out = "$'";
  for (const unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (stays_as_it_is(c)) {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out + "'";
}

// `bytes` as the single-quoted argument of printf's %b, which writes them
// back: any byte but printable ASCII, a quote, '!' and a backslash is
// \0ooo (always three digits, so a digit after it is not taken in), NUL
// included, which no shell string can hold.
std::string printf_b_argument(std::string_view bytes) {
  std::string out = "'";
  for (const unsigned char c : bytes) {
    if (c == '\\') {
      out += "\\\\";
    } else if (stays_as_it_is(c)) {
      out += static_cast<char>(c);
    } else {
      out += "\\0";
      out += static_cast<char>('0' + (c >> 6));
      out += static_cast<char>('0' + ((c >> 3) & 7));
      out += static_cast<char>('0' + (c & 7));
    }
  }
  return out + "'";
}

// A public URL the command may name: http:// or https:// and a host with its
// port, nothing more (no user info, path or other scheme for curl to act on).
bool is_exportable_public_url(std::string_view url) {
  std::string_view authority;
  if (url.starts_with("http://")) {
    authority = url.substr(7);
  } else if (url.starts_with("https://")) {
    authority = url.substr(8);
  } else {
    return false;
  }
  return !authority.empty() && std::all_of(authority.begin(), authority.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view(".-_:[]").find(c) != std::string_view::npos;
  });
}

// Whether curl -H sends the field as it is. A token name keeps the argument
// from starting with '@' (curl would read headers from that file) and from
// holding another ':'; a line break or NUL cannot be sent.
bool fits_curl_header(std::string_view name, std::string_view value) {
  return http::is_token(name) &&
         value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

json name_values(const header_list& headers) {
  json out = json::array();
  for (const auto& [name, value] : headers) {
    out.push_back({{"name", name}, {"value", value}});
  }
  return out;
}

// "a=1&b=2" as HAR name/value pairs.
json query_pairs(std::string_view query) {
  json out = json::array();
  for (auto& [name, value] : http::parse_form(query)) {
    out.push_back({{"name", std::move(name)}, {"value", std::move(value)}});
  }
  return out;
}

// The cookies of Cookie headers ("a=1; b=2").
json request_cookies(const header_list& headers) {
  json out = json::array();
  for (const auto& [name, value] : headers) {
    if (!http::iequals(name, "cookie")) {
      continue;
    }
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto semi = rest.find(';');
      const std::string_view part = http::trim_ows(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      if (const auto eq = part.find('='); eq != std::string_view::npos) {
        out.push_back({{"name", std::string(http::trim_ows(part.substr(0, eq)))},
                       {"value", std::string(http::trim_ows(part.substr(eq + 1)))}});
      }
    }
  }
  return out;
}

// The cookies set by Set-Cookie headers (name and value; attributes dropped).
json response_cookies(const header_list& headers) {
  json out = json::array();
  for (const auto& [name, value] : headers) {
    if (!http::iequals(name, "set-cookie")) {
      continue;
    }
    const std::string_view first = std::string_view(value).substr(0, value.find(';'));
    if (const auto eq = first.find('='); eq != std::string_view::npos) {
      out.push_back({{"name", std::string(http::trim_ows(first.substr(0, eq)))},
                     {"value", std::string(http::trim_ows(first.substr(eq + 1)))}});
    }
  }
  return out;
}

// The size of a message's start line and headers, with the blank line.
long long head_size(std::string_view start_line, const header_list& headers) {
  std::size_t n = start_line.size() + 2 + 2;
  for (const auto& [name, value] : headers) {
    n += name.size() + 2 + value.size() + 2;
  }
  return static_cast<long long>(n);
}

std::string http_version(const std::string& v) {
  return v.empty() ? "HTTP/1.1" : v;
}

// HAR's content object: the decoded body, as text or base64.
json content(const header_list& headers, const captured_body& body) {
  const body_decoding decoded = decoded_body(headers, body);
  std::string mime = header_value(headers, "content-type");
  json out = {{"size", decoded.bytes.size()}, {"mimeType", mime}};
  if (is_utf8(decoded.bytes)) {
    out["text"] = decoded.bytes;
  } else {
    out["text"] = http::base64(decoded.bytes);
    out["encoding"] = "base64";
  }
  if (!decoded.complete()) {
    out["comment"] = decoded.error;
  }
  return out;
}

json har_entry(const exchange& e) {
  const captured_request& rq = e.request;
  const auto question = rq.target.find('?');
  json request = {
      {"method", rq.method},
      {"url", e.public_url + rq.target},
      {"httpVersion", http_version(rq.version)},
      {"cookies", request_cookies(rq.headers)},
      {"headers", name_values(rq.headers)},
      {"queryString", query_pairs(question == std::string::npos
                                      ? std::string_view{}
                                      : std::string_view(rq.target).substr(question + 1))},
      {"headersSize", head_size(rq.method + " " + rq.target + " " + rq.version, rq.headers)},
      {"bodySize", rq.body.size},
  };
  if (rq.body.size > 0) {
    const json c = content(rq.headers, rq.body);
    json post = {{"mimeType", c["mimeType"]}, {"text", c["text"]}};
    const std::string mime = c["mimeType"];
    if (http::iequals(std::string_view(mime).substr(0, mime.find(';')),
                      "application/x-www-form-urlencoded") &&
        !c.contains("encoding")) {
      post["params"] = query_pairs(c["text"].get<std::string>());
    }
    if (c.contains("encoding")) {
      post["comment"] = "the body is not UTF-8 text; text holds it in base64";
    }
    request["postData"] = post;
  }

  json response;
  if (e.response) {
    const captured_response& rs = *e.response;
    response = {
        {"status", rs.status},
        {"statusText", rs.reason},
        {"httpVersion", http_version(rs.version)},
        {"cookies", response_cookies(rs.headers)},
        {"headers", name_values(rs.headers)},
        {"content", content(rs.headers, rs.body)},
        {"redirectURL", header_value(rs.headers, "location")},
        {"headersSize",
         head_size(rs.version + " " + std::to_string(rs.status) + " " + rs.reason, rs.headers)},
        {"bodySize", rs.body.size},
    };
  } else {
    response = {{"status", 0},
                {"statusText", ""},
                {"httpVersion", http_version(rq.version)},
                {"cookies", json::array()},
                {"headers", json::array()},
                {"content", {{"size", 0}, {"mimeType", ""}}},
                {"redirectURL", ""},
                {"headersSize", -1},
                {"bodySize", -1},
                {"_error", e.error.empty() ? "no response" : e.error}};
  }

  const double total_ms = static_cast<double>(e.duration.count()) / 1000.0;
  json entry = {
      {"startedDateTime", iso8601(e.start)},
      {"time", total_ms},
      {"request", std::move(request)},
      {"response", std::move(response)},
      {"cache", json::object()},
      // Capture sees the whole exchange, not its phases: all of it is "wait".
      {"timings", {{"send", 0}, {"wait", total_ms}, {"receive", 0}}},
      {"_id", std::to_string(e.id)},
      {"_tunnel", e.tunnel_name},
      {"_remoteAddress", e.remote_addr},
  };
  if (e.replay_of) {
    entry["_replayOf"] = std::to_string(*e.replay_of);
  }
  if (e.websocket) {
    entry["_websocket"] = {{"messagesIn", e.websocket->messages_in},
                           {"messagesOut", e.websocket->messages_out},
                           {"bytesIn", e.websocket->bytes_in},
                           {"bytesOut", e.websocket->bytes_out}};
  }
  return entry;
}

}  // namespace

std::string to_curl(const exchange& e) {
  const captured_request& rq = e.request;
  if (!is_exportable_public_url(e.public_url)) {
    return "# not exported: the tunnel's public URL " + shell_quote(e.public_url) +
           " is not http:// or https:// and a host\n";
  }
  if (!http::is_token(rq.method)) {
    return "# not exported: the method " + shell_quote(rq.method) + " is not an HTTP token\n";
  }
  std::string notes;
  if (rq.body.truncated) {
    notes += "# the request body was cut at capture: " + std::to_string(rq.body.bytes.size()) +
             " of " + std::to_string(rq.body.size) + " bytes are sent\n";
  }
  std::string command = "curl";
  if (rq.method == "HEAD" && rq.body.size == 0) {
    command += " --head";
  } else if (rq.method != "GET" || rq.body.size > 0) {
    command += " -X " + shell_quote(rq.method);
  }
  // curl sends the path and query of a URL as given only without globbing
  // ([1-2], {a,b}) and with dot segments kept; it drops a '#' and what
  // follows. Another target ('#', "*", absolute-form) goes as it is, on its own.
  const bool in_url = rq.target.starts_with('/') && rq.target.find('#') == std::string::npos;
  const std::string url = e.public_url + (in_url ? rq.target : std::string("/"));
  command += " --url " + shell_quote(url);
  if (!in_url) {
    command += " --request-target " + shell_quote(rq.target);
  }
  if (url.find_first_of("[]{}") != std::string::npos) {
    command += " --globoff";
  }
  if (in_url && rq.target.find("/.") != std::string::npos) {
    command += " --path-as-is";
  }
  if (rq.version == "HTTP/1.0") {
    command += " --http1.0";
  }

  std::vector<std::string_view> given;
  for (const auto& [name, value] : rq.headers) {
    // The server sets its forwarding fields again on the way in (and drops
    // any a client sends but X-Forwarded-For, which would grow).
    if (http::iequals(name, "host") || http::iequals(name, "content-length") ||
        http::iequals(name, "transfer-encoding") || http::is_edge_field(name)) {
      continue;
    }
    if (!fits_curl_header(name, value)) {
      notes += "# left out, curl cannot send it: the header " + shell_quote(name) + " " +
               shell_quote(value) + "\n";
      continue;
    }
    given.push_back(name);
    // An empty header is sent with "Name;" (curl drops "Name:").
    command += " \\\n  -H " + shell_quote(value.empty() ? name + ";" : name + ": " + value);
  }
  // "Name:" removes a header curl would add of its own.
  const bool with_body = rq.body.size > 0;
  for (const std::string_view own : {"User-Agent", "Accept", "Content-Type", "Expect"}) {
    const bool added_by_curl = with_body || (own != "Content-Type" && own != "Expect");
    if (added_by_curl && std::none_of(given.begin(), given.end(), [&](std::string_view name) {
          return http::iequals(name, own);
        })) {
      command += " \\\n  -H '" + std::string(own) + ":'";
    }
  }

  std::string pipe;
  if (with_body) {
    std::string body = rq.body.bytes;
    if (find_header(rq.headers, "transfer-encoding") != nullptr) {
      // Only the transfer coding is removed; a content coding stays as sent.
      header_list transfer_only;
      for (const auto& h : rq.headers) {
        if (http::iequals(h.first, "transfer-encoding")) {
          transfer_only.push_back(h);
        }
      }
      body = decoded_body(transfer_only, rq.body).bytes;
    }
    // --data-raw sends its argument as it is (--data-binary would read a
    // file named after an '@'). No argument holds a NUL, and Linux refuses
    // one over 128 KiB: such bodies reach curl on its standard input.
    constexpr std::size_t max_body_argument = 64 * 1024;
    if (body.size() <= max_body_argument && body.find('\0') == std::string::npos) {
      command += " \\\n  --data-raw " + shell_quote(body);
    } else {
      pipe = "printf '%b' " + printf_b_argument(body) + " | ";
      command += " \\\n  --data-binary @-";
    }
  }
  return notes + pipe + command + "\n";
}

json to_har(std::span<const exchange> exchanges, std::string_view creator_version) {
  json entries = json::array();
  for (const exchange& e : exchanges) {
    entries.push_back(har_entry(e));
  }
  return {{"log",
           {{"version", "1.2"},
            {"creator", {{"name", "porthole"}, {"version", std::string(creator_version)}}},
            {"pages", json::array()},
            {"entries", std::move(entries)}}}};
}

}  // namespace porthole::inspect
