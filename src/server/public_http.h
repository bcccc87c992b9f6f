#pragma once
// Public HTTP and HTTPS connections: each request is routed by its Host to a
// tunnel, checked against the tunnel's basic auth, given X-Forwarded-* fields
// and carried over one proxy connection of the tunnel's client.

#include <memory>
#include <optional>
#include <string>

#include "net/stream.h"
#include "server/connection_limits.h"
#include "server/control_session.h"

namespace porthole::server {

class server;
struct metrics;

/// A public connection served on another shard than the server's own: the
/// shard of the multiplexed connection that carries it (docs/THREADS.md).
/// It serves `t` only and asks the server's thread nothing: a request for
/// another name gets 421 (a new connection is routed afresh).
struct pinned_public {
  std::shared_ptr<tunnel> t;
  mux_link via;
  std::shared_ptr<metrics> counters;  ///< the shard's own
};

/// Serves one public connection until it closes. `scheme` is "http" or "https".
/// The connection is the session's: whatever runs on its behalf shares it, and
/// nothing of it is still in flight when this returns.
net::asio::awaitable<void> serve_public_http(server& srv, net::tcp::socket stream,
                                             std::string scheme, public_peer from,
                                             std::optional<pinned_public> pinned = std::nullopt);
/// `relayed`: another node of the cluster handed the connection here (its
/// client's address is `from.ip`); a request for a name this node does not
/// serve is then refused (421), never handed on.
net::asio::awaitable<void> serve_public_http(server& srv, std::unique_ptr<net::tls_stream> stream,
                                             std::string scheme, public_peer from,
                                             bool relayed = false,
                                             std::optional<pinned_public> pinned = std::nullopt);

}  // namespace porthole::server
