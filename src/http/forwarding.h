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

/// Who the request came from and how it reached the edge: the values of the
/// fields add_forwarded_fields sets.
struct forwarded_for {
  std::string client_ip;  ///< the public client's address, IPv6 without brackets
  std::string proto;      ///< "http" or "https"
  std::string host;       ///< the Host field as the client sent it, port included
};

/// True if `name` is a field only the edge may set: the X-Forwarded-* family,
/// Forwarded, X-Real-IP, and the other names applications read for the
/// client's address or scheme (X-Client-IP, Client-IP, True-Client-IP,
/// X-Cluster-Client-IP, X-Forwarded, Forwarded-For, Front-End-Https,
/// X-Url-Scheme). Names are compared as CGI and WSGI servers map them to
/// HTTP_* variables: case-insensitive, with '-' and '_' the same character.
bool is_edge_field(std::string_view name);

/// Returns `head` (a complete request head, ending in an empty line) as the
/// edge forwards it to the local service; docs/SECURITY.md has the table.
///
/// - Fields named in Connection are hop-by-hop (RFC 9110 7.6.1) and dropped,
///   except those the tunnel carries end to end: Upgrade, Keep-Alive and TE
///   (the options upgrade, keep-alive and te) and the fields that frame or
///   route the request (Host, Content-Length, Transfer-Encoding, and
///   Proxy-Connection, which the edge's parser reads as Connection). Connection
///   keeps only its options close, keep-alive, upgrade and te, so it frames
///   the request for the service as it did for the edge, and never names a
///   field the edge sets; left empty, it is dropped.
/// - Every field for which is_edge_field is true is dropped, except
///   X-Forwarded-For spelled with dashes (and not named in Connection): the
///   last such field is forwarded as "<name>: <its value>, <client_ip>"
///   (several fields are one list, RFC 9110 5.3; the last entry is the edge's).
/// - Then, before the empty line: X-Forwarded-For (when the client sent
///   none), X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port (the port
///   of `host`, else the scheme's), X-Real-IP, and Forwarded (RFC 7239:
///   for, proto, host). An empty member of `f` adds none of its fields.
///
/// Every other byte of the head is kept as it was; values cannot add lines.
std::string add_forwarded_fields(std::string_view head, const forwarded_for& f);

/// `head` (a complete request head) without the option `close` in its
/// Connection and Proxy-Connection fields (a field left with no option is
/// dropped): the head a reverse proxy sends on a connection to the service
/// that it keeps for later requests, while it closes the client's itself.
/// Every other byte is kept. Empty if the head has no close option.
std::string without_close_option(std::string_view head);

/// `head` (a complete response head) saying `Connection: close`: the option
/// keep-alive taken out of its Connection fields and close added, for the
/// client that asked to close (RFC 9112 9.6) when the service was not told.
/// Every other byte is kept. Empty if the head already says close.
std::string with_close_option(std::string_view head);

/// A complete response with a small HTML page, Content-Length set and
/// `Connection: close` unless keep_alive. `extra_fields` are whole lines,
/// each ending in CRLF (e.g. "WWW-Authenticate: Basic realm=\"x\"\r\n").
std::string error_response(unsigned status, std::string_view reason, std::string_view message,
                           bool keep_alive = false, std::string_view extra_fields = {});

}  // namespace porthole::http
