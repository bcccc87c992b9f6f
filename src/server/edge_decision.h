#pragma once
// What the edge does with a public request whose head is complete: forward it
// to a tunnel with the X-Forwarded-* fields, answer it here with a small page,
// hand the connection to the node that serves the name, or close without an
// answer. One pure decision for HTTP/1.1 and HTTP/2: the protocol's session
// gathers the facts, waits where the directory is about to change, and
// carries the decision out.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "http/forwarding.h"
#include "server/metrics.h"
#include "server/tunnel.h"

namespace porthole::server {

/// The fields of a request the decision reads (HTTP/1.1 Host, or HTTP/2
/// :authority; nullopt when absent).
struct request_facts {
  std::optional<std::string_view> host;
  std::optional<std::string_view> authorization;
  /// The client may send another request on the connection after this one
  /// (HTTP/1.1 keep-alive; always true for HTTP/2).
  bool keep_alive = true;
};

/// What the directory said of the request's name (after any wait).
struct route_facts {
  const tunnel* local = nullptr;  ///< the tunnel here that serves it
  bool remote = false;            ///< a client of another node serves it
  bool held = false;              ///< nobody does now; its client is expected back
};

/// The connection the request came on, at that moment.
struct connection_facts {
  std::string_view scheme;        ///< "http" or "https"
  std::string_view client_ip;     ///< the public client's address, IPv6 without brackets
  /// Served on another shard than the server's: only this tunnel, asking the
  /// directory nothing (docs/THREADS.md); nullptr if not pinned.
  const tunnel* pinned = nullptr;
  bool pinned_usable = true;      ///< the pinned tunnel's connection is still open
  bool relayed = false;           ///< another node handed the connection here
  /// The tunnel whose stream carries this connection's requests (HTTP/1.1:
  /// one stream per connection); nullptr when requests are not tied to one.
  const tunnel* serving = nullptr;
  bool answers_owed = false;      ///< earlier requests are not fully answered
  bool stopping = false;          ///< the server is shutting down
  bool relay_failed = false;      ///< the node that serves the name could not be reached
};

/// How the connection goes on after an answer given here.
enum class after_answer {
  keep_alive,  ///< the request's body is read and dropped; the next request follows
  after_body,  ///< the request's body is read and dropped, then the connection closes
  close,       ///< the connection closes once the answer is out
};

/// An answer the edge gives itself (http::error_response makes the page).
struct local_answer {
  unsigned status = 0;
  std::string reason;
  std::string message;
  std::string extra_fields;  ///< whole lines, each ending in CRLF
  after_answer then = after_answer::close;
  std::optional<error_kind> counted;  ///< the /metrics error it counts as
};

/// The edge's decision for one request.
struct edge_decision {
  enum class action {
    forward,  ///< to the route's local tunnel, with `forwarded`
    answer,   ///< with `answer`
    relay,    ///< hand the connection to the node that serves the name
    refuse,   ///< the request has no Host (http::error::missing_host): 400
    close,    ///< close without an answer: the client sends it again elsewhere
  };
  action what = action::close;
  http::forwarded_for forwarded;  ///< for forward
  local_answer answer;            ///< for answer
};

/// The routing name of the request (http::routing_host of its Host), or
/// empty if it has none.
std::string request_host(const request_facts& req);

/// Decides what to do with `req`, whose name the directory routes as `to`,
/// arriving on `conn`. docs/SECURITY.md ("What the edge answers itself")
/// lists the answers. Pure.
edge_decision decide(const request_facts& req, const route_facts& to,
                     const connection_facts& conn);

}  // namespace porthole::server
