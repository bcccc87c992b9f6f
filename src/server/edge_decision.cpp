#include "server/edge_decision.h"

namespace porthole::server {

namespace {

edge_decision answer(unsigned status, std::string reason, std::string message, after_answer then,
                     std::optional<error_kind> counted = std::nullopt,
                     std::string extra_fields = {}) {
  edge_decision d;
  d.what = edge_decision::action::answer;
  d.answer = {status, std::move(reason), std::move(message), std::move(extra_fields), then,
              counted};
  return d;
}

edge_decision act(edge_decision::action what) {
  edge_decision d;
  d.what = what;
  return d;
}

}  // namespace

std::string request_host(const request_facts& req) {
  return req.host ? http::routing_host(*req.host) : std::string();
}

edge_decision decide(const request_facts& req, const route_facts& to,
                     const connection_facts& conn) {
  using action = edge_decision::action;
  if (!req.host || req.host->empty()) {
    return act(action::refuse);
  }
  const std::string host = http::routing_host(*req.host);
  if (conn.pinned && (host != conn.pinned->host || !conn.pinned_usable)) {
    // A pinned connection's thread does not route: the client asks again on
    // a new connection, which the server's thread routes.
    return answer(421, "Misdirected Request",
                  "This connection serves " + conn.pinned->host + "; open a new one for " + host +
                      ".",
                  after_answer::after_body);
  }
  if (conn.stopping && !to.local && !conn.answers_owed) {
    // A node that shuts down and no longer serves the name: unanswered, the
    // request is sent again on a new connection, to another node. Nothing of
    // it was forwarded.
    return act(action::close);
  }
  if (!to.local && to.remote) {
    if (conn.relayed || conn.serving || conn.answers_owed) {
      // One hop at most, and a connection relayed to one node is that
      // node's: a request for a name served elsewhere goes on another.
      return answer(421, "Misdirected Request",
                    "This connection cannot carry requests for " + host + "; open a new one.",
                    after_answer::after_body);
    }
    if (!conn.relay_failed) {
      return act(action::relay);
    }
    return answer(502, "Bad Gateway",
                  "Tunnel " + host +
                      " is served by another node of this server, which cannot be reached now; "
                      "try again.",
                  after_answer::close, error_kind::relay_failed, "Retry-After: 1\r\n");
  }
  if (!to.local) {
    if (to.held) {
      return answer(503, "Service Unavailable",
                    "Tunnel " + host +
                        " is reconnecting: its client lost the connection and is expected back "
                        "shortly.",
                    after_answer::close, std::nullopt, "Retry-After: 5\r\n");
    }
    return answer(404, "Not Found", "Tunnel " + host + " not found", after_answer::close,
                  error_kind::tunnel_not_found);
  }
  const after_answer then = req.keep_alive ? after_answer::keep_alive : after_answer::after_body;
  if (conn.serving && to.local != conn.serving) {
    // One stream serves one tunnel.
    return answer(421, "Misdirected Request",
                  "This connection serves " + conn.serving->host + ", not " + host + ".", then);
  }
  if (!to.local->http_auth.empty() &&
      !(req.authorization && http::basic_auth_matches(*req.authorization, to.local->http_auth))) {
    return answer(401, "Unauthorized", "This tunnel requires a user name and password.", then,
                  error_kind::basic_auth_refused,
                  "WWW-Authenticate: Basic realm=\"porthole\"\r\n");
  }
  edge_decision d = act(action::forward);
  d.forwarded = {std::string(conn.client_ip), std::string(conn.scheme), std::string(*req.host)};
  return d;
}

}  // namespace porthole::server
