#pragma once
// What an edge proxy does to a request head before it forwards it, and the
// small HTTP answers the edge gives itself. Pure: strings in, strings out.

#include <string>
#include <string_view>

namespace porthole::http {

/// The routing name of a Host header: lower case, port removed, IPv6 brackets
/// kept ("Foo.Example.com:8080" -> "foo.example.com", "[::1]:80" -> "[::1]").
std::string routing_host(std::string_view host_header);

/// True if `authorization` is "Basic <base64 of user_pass>" (scheme
/// case-insensitive); the secret is compared in constant time.
bool basic_auth_matches(std::string_view authorization, std::string_view user_pass);

/// Who the request came from, for the X-Forwarded-* fields.
struct forwarded_for {
  std::string client_ip;  ///< appended to X-Forwarded-For
  std::string proto;      ///< "http" or "https": replaces X-Forwarded-Proto
  std::string host;       ///< the Host the client asked for: replaces X-Forwarded-Host
};

/// Returns `head` (a complete request head, ending in an empty line) with
/// X-Forwarded-For appended to (or added), X-Forwarded-Proto and
/// X-Forwarded-Host set; every other byte of the head is kept as it was.
/// Existing X-Forwarded-Proto and X-Forwarded-Host lines are always removed
/// (the client may not set them); an empty member of `f` adds no field.
std::string add_forwarded_fields(std::string_view head, const forwarded_for& f);

/// A complete response with a small HTML page, Content-Length set and
/// `Connection: close` unless keep_alive. `extra_fields` are whole lines,
/// each ending in CRLF (e.g. "WWW-Authenticate: Basic realm=\"x\"\r\n").
std::string error_response(unsigned status, std::string_view reason, std::string_view message,
                           bool keep_alive = false, std::string_view extra_fields = {});

}  // namespace porthole::http
