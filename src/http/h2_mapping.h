#pragma once
// HTTP/2 messages as HTTP/1.1 messages and back, for an edge that speaks
// HTTP/2 to the public and carries each request over the tunnel as one
// HTTP/1.1 exchange (docs/PROTOCOL.md, "HTTP/2"). Trailers travel in a
// chunked body's trailer section. Pure: fields in, bytes out.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message_parser.h"

namespace porthole::http {

/// The head of an HTTP/2 request: its pseudo-header fields and the others
/// (names lower case, as HTTP/2 requires).
struct h2_request {
  std::string method;
  std::string scheme;
  std::string authority;
  std::string path;
  std::vector<field> fields;

  /// The value of the first field with this name (lower case), if any.
  std::optional<std::string_view> find(std::string_view name) const;
};

/// How the request's body, if any, is framed in HTTP/1.1.
enum class h1_body {
  none,            ///< the HEADERS frame ended the stream
  content_length,  ///< the request says its length (Content-Length is kept)
  chunked,         ///< DATA frames become chunks; trailers the trailer section
};

/// How `r` is framed: none when `ends_stream`, else by its content-length
/// field if it has one, else chunked.
h1_body body_framing(const h2_request& r, bool ends_stream);

/// The HTTP/1.1 head of `r` (request line, Host from :authority, or from a
/// host field when there is no :authority; cookie fields joined with "; "
/// as RFC 9113 8.2.3 asks; Transfer-Encoding: chunked for a chunked body;
/// TE: trailers with Connection: te when the client sent it). The fields
/// HTTP/2 forbids (connection-specific ones) are not copied. The result is
/// then checked as any public HTTP/1.1 head is (check_request_head).
std::string h1_request_head(const h2_request& r, h1_body body);

/// One chunk of a chunked body ("<hex size>\r\n<bytes>\r\n"); nothing for
/// an empty `bytes` (which would end the body).
void append_chunk(std::string& out, std::string_view bytes);

/// The end of a chunked body: the last chunk, then `trailers`, then the
/// empty line.
void append_last_chunk(std::string& out, const std::vector<field>& trailers);

/// The fields of `h` as an HTTP/2 response sends them: names lower case,
/// without the connection-specific fields (Connection and those it names,
/// Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE).
std::vector<field> h2_response_fields(const response_head& h);

/// True if `name` (any case) is a field HTTP/2 forbids in a message
/// (RFC 9113 8.2.2), TE aside.
bool is_connection_specific(std::string_view name);

}  // namespace porthole::http
