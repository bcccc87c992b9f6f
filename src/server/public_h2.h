#pragma once
// Public HTTP/2 connections (ALPN h2 on HTTPS, h2c with prior knowledge on
// plain HTTP), with nghttp2. Each stream is routed and checked as an
// HTTP/1.1 request is (server/edge_decision.h) and carried over the tunnel
// as one HTTP/1.1 exchange on a stream of its own (docs/PROTOCOL.md,
// "HTTP/2"): the client and the local service see HTTP/1.1, trailers in a
// chunked body.

#include <memory>
#include <optional>
#include <string>

#include "net/stream.h"
#include "server/connection_limits.h"
#include "server/public_http.h"

namespace porthole::server {

class server;

/// Serves one public HTTP/2 connection until it closes. `already_read`: bytes
/// read from it before it was known to be HTTP/2 (the client preface, on a
/// plain connection). `scheme` is "http" or "https".
net::asio::awaitable<void> serve_public_h2(server& srv, std::unique_ptr<net::tcp::socket> stream,
                                           std::string scheme, public_peer from,
                                           std::string already_read,
                                           std::optional<pinned_public> pinned);
net::asio::awaitable<void> serve_public_h2(server& srv, std::unique_ptr<net::tls_stream> stream,
                                           std::string scheme, public_peer from,
                                           std::string already_read,
                                           std::optional<pinned_public> pinned);

/// True if `bytes` (what a plain connection sent first) start as the HTTP/2
/// client preface does, "PRI * HTTP/2.0\r\n".
bool starts_h2_preface(std::string_view bytes);

}  // namespace porthole::server
