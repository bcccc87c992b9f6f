#pragma once
// What one authtoken's clients may hold on the server, counted over all the
// live clients that authenticated with it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/connection_limits.h"

namespace porthole::server {

class control_session;

/// One token's bounds; 0: no limit.
struct token_limits {
  std::size_t max_tunnels = 0;
  std::size_t max_tcp_ports = 0;  ///< tcp tunnels (each holds a public port)
  std::size_t max_conns = 0;      ///< public connections open at once
};

/// The tunnels a token's live clients have open.
struct token_usage {
  std::size_t tunnels = 0;
  std::size_t tcp_ports = 0;
};

/// An accepted authtoken: which one, as the server's accounting and logs know it.
struct token_identity {
  std::string key;    ///< "db:<id>" or "file:<line>"; empty on a server that takes any client
  std::string label;  ///< for log lines: "token 3 'ci'", "--authtokens token 2"
  std::optional<std::int64_t> db_id;  ///< set for a token of tokens.db
  token_limits limits;
  bool own_tunnels = false;    ///< limits.max_tunnels is the token's own, not the server's default
  bool own_tcp_ports = false;  ///< likewise max_tcp_ports
  bool own_conns = false;      ///< likewise max_conns
};

/// The NewTunnel error for a ReqTunnel that would add `adding` tunnels (tcp
/// ones if `tcp`) to what the token's clients use, or "" if the limits allow it.
std::string tunnel_limit_refusal(const token_identity& who, token_usage used, std::size_t adding,
                                 bool tcp);

/// One token's share of the server, held by each of its live clients.
class token_account {
 public:
  explicit token_account(token_identity who) : who_(std::move(who)) {}

  const token_identity& who() const { return who_; }

  /// The counter of the token's open public connections (see public_conn_slot),
  /// or nullptr when the token is at its max_conns.
  std::shared_ptr<std::size_t> admit_conn() const {
    if (who_.limits.max_conns != 0 && *conns_ >= who_.limits.max_conns) {
      return nullptr;
    }
    return conns_;
  }
  std::size_t conns() const { return *conns_; }

  /// What the token's live clients hold now (prunes the gone ones).
  token_usage usage();

  /// The token's live clients (expired ones are pruned by whoever walks them).
  std::vector<std::weak_ptr<control_session>> sessions;
  log_throttle conn_limit_log;

 private:
  token_identity who_;
  std::shared_ptr<std::size_t> conns_ = std::make_shared<std::size_t>(0);
};

}  // namespace porthole::server
