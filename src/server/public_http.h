#pragma once
// Public HTTP and HTTPS connections: each request is routed by its Host to a
// tunnel, checked against the tunnel's basic auth, given X-Forwarded-* fields
// and carried over one proxy connection of the tunnel's client.

#include <memory>
#include <string>

#include "net/stream.h"

namespace porthole::server {

class server;

/// Serves one public connection until it closes. `scheme` is "http" or "https".
/// The connection is the session's: whatever runs on its behalf shares it, and
/// nothing of it is still in flight when this returns.
net::asio::awaitable<void> serve_public_http(server& srv, net::tcp::socket stream,
                                             std::string scheme, std::string client_ip);
/// `relayed`: another node of the cluster handed the connection here (its
/// client's address is `client_ip`); a request for a name this node does not
/// serve is then refused (421), never handed on.
net::asio::awaitable<void> serve_public_http(server& srv, std::unique_ptr<net::tls_stream> stream,
                                             std::string scheme, std::string client_ip,
                                             bool relayed = false);

}  // namespace porthole::server
