#pragma once
// Who holds each public name and where it routes: the one place for that fact
// on a server. A name is an HTTP(S) host name ("myapp.example.com") or a TCP
// tunnel's URL ("tcp://example.com:20001"); it belongs to one client whatever
// the scheme, and the schemes the client serves on it are a property of its
// claim, so no other client can take the other scheme of a name.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "net/stream.h"
#include "server/metrics.h"
#include "server/tunnel.h"

namespace porthole::server {

/// How a claim ended.
enum class claim_outcome {
  won,             ///< the name is the client's now, routed to its tunnels here
  live_elsewhere,  ///< another client serves it now
  held_elsewhere,  ///< it is held for another client during its reconnect grace period
  unavailable,     ///< the directory could not be asked (a cluster's store is unreachable)
};

/// The answer to a claim.
struct claim_answer {
  claim_outcome outcome = claim_outcome::unavailable;
  std::int64_t revision = 0;  ///< the claim's revision, which grows with every claim
  std::string error;          ///< why, when unavailable

  bool won() const { return outcome == claim_outcome::won; }
};

/// Who claims: a client, and the token it authenticated with ("" on a server
/// that takes any client). A client's claim is still its own after it moved
/// to another connection, as long as the token is the same.
struct claimant {
  std::string client_id;
  std::string token;

  bool operator==(const claimant&) const = default;
};

/// Another node that serves a name, as this node last saw it.
struct remote_owner {
  std::string node_id;
  std::string node_addr;      ///< its node-to-node listener, HOST:PORT
  std::int64_t revision = 0;  ///< of the claim: a relay carries it as its fencing token
};

/// Where a public connection for a name goes.
struct route {
  std::shared_ptr<tunnel> local;       ///< the tunnel here that serves it, or nullptr
  std::int64_t revision = 0;           ///< the revision of the local tunnel's claim
  std::optional<remote_owner> remote;  ///< a client of another node serves it
  bool held = false;  ///< nobody serves it now; its client disconnected and may come back
  /// Held because its node is shutting down and its client is expected on
  /// another node within moments: worth waiting for rather than refusing.
  bool moving = false;
};

/// A name held for a client after a disconnect, with the schemes it served.
struct held_name {
  std::string name;
  std::vector<std::string> schemes;
};

/// Where a node listens, for the other nodes and their clients.
struct node_addresses {
  std::string node_id;
  std::string node_addr;    ///< the node-to-node listener
  std::string tunnel_addr;  ///< the tunnel clients' listener
};

/// The directory of names. Kept behind this interface so that several
/// portholed nodes can share one.
class directory {
 public:
  using clock = std::chrono::steady_clock;

  virtual ~directory() = default;

  /// A cluster's directory joins the cluster before the node accepts anyone
  /// (throws std::runtime_error naming the problem); a single node's has
  /// nothing to do.
  virtual net::asio::awaitable<void> join(node_addresses here) { co_return; }

  /// The node is shutting down: the names it releases from now on are held
  /// as moving (their clients come back through another node).
  virtual void begin_leaving() {}

  /// Leaves the cluster once the names it held moved to other nodes (or
  /// `deadline` passed); what is left goes at once instead of when its
  /// lease runs out.
  virtual net::asio::awaitable<void> leave(clock::time_point deadline) { co_return; }

  /// Called when the node lost its names at once (a cluster lease that
  /// expired): the server closes its clients' sessions so they claim again.
  std::function<void(std::string_view why)> on_names_lost;

  /// The URLs of every TCP tunnel, served here or by another node.
  virtual std::vector<std::string> tcp_names() const { return {}; }

  /// Where the clients of this node may connect if it goes: the tunnel
  /// listeners of the other nodes ("host:port").
  virtual std::vector<std::string> other_nodes() const { return {}; }

  /// A cluster's figures for /metrics and /healthz; none for a single node.
  virtual std::optional<cluster_figures> figures() const { return std::nullopt; }

  /// Called when tcp_names() may have changed (another node's claim).
  std::function<void()> on_tcp_names_changed;

  /// Claims `name` for `who`, to be served by `tunnels` (one per scheme, each
  /// with routing_name() == name). Won if the name is free, or already the
  /// client's (live in any scheme, or held for it after a disconnect); then
  /// each tunnel is routed, replacing one the client had for that scheme.
  virtual net::asio::awaitable<claim_answer> claim(
      std::string name, claimant who, std::vector<std::shared_ptr<tunnel>> tunnels) = 0;

  /// True while the directory may not know every name: a cluster node that
  /// lost its watch of etcd and has not read every name again since. A
  /// name it does not know may then exist.
  virtual bool catching_up() const { return false; }

  /// True if a client may keep a second control connection here, standing
  /// by for the tunnels it has on another node (extension "standby"): a
  /// cluster's directory.
  virtual bool takes_standby() const { return false; }

  /// A client's standby connection asks to serve `name` here: while the name
  /// is claimed by `who` on another node (live, or held for it), public
  /// connections for it that reach this node go to `tunnels` (the client's,
  /// on this node) instead of that node. False if the name is not `who`'s.
  /// A claim of the name here ends the standby; so does release(t).
  virtual net::asio::awaitable<bool> stand_by(std::string name, claimant who,
                                              std::vector<std::shared_ptr<tunnel>> tunnels) {
    co_return false;
  }

  /// The client stopped serving `t`. Its route goes; once none of the
  /// client's schemes of the name is live, the name stays the client's until
  /// `hold_until` (the reconnect grace period); a time already past gives it
  /// up at once. A tunnel the directory no longer routes changes nothing.
  virtual void release(const tunnel& t, clock::time_point hold_until) = 0;

  /// Where a public connection for `scheme` of `name` goes.
  virtual route find(std::string_view scheme, std::string_view name) const = 0;

  /// Names of `client_id` held after a disconnect, for reuse when it asks
  /// for a tunnel without naming one.
  virtual std::vector<held_name> held_by(std::string_view client_id) const = 0;

  /// True if nobody has `name`, live or held.
  virtual bool is_free(std::string_view name) const = 0;

  /// The tunnels routed here (for /metrics).
  virtual std::vector<std::shared_ptr<tunnel>> local_tunnels() const = 0;
};

/// The directory of a single portholed: everything in this process's memory.
class local_directory final : public directory {
 public:
  /// `now` is the clock hold periods are measured on (a test's fake one).
  explicit local_directory(std::function<clock::time_point()> now = clock::now);

  net::asio::awaitable<claim_answer> claim(std::string name, claimant who,
                                           std::vector<std::shared_ptr<tunnel>> tunnels) override;
  void release(const tunnel& t, clock::time_point hold_until) override;
  route find(std::string_view scheme, std::string_view name) const override;
  std::vector<held_name> held_by(std::string_view client_id) const override;
  bool is_free(std::string_view name) const override;
  std::vector<std::shared_ptr<tunnel>> local_tunnels() const override;

  /// The synchronous core of claim(), for callers that cannot wait.
  claim_answer claim_now(std::string_view name, const claimant& who,
                         const std::vector<std::shared_ptr<tunnel>>& tunnels);

 private:
  struct entry {
    claimant owner;
    std::map<std::string, std::shared_ptr<tunnel>, std::less<>> live{};  ///< by scheme
    std::set<std::string, std::less<>> held{};      ///< schemes given up with a grace period
    std::optional<clock::time_point> held_until{};  ///< set while no scheme is live
    std::int64_t revision = 0;
  };
  bool expired(const entry& e) const { return e.held_until && *e.held_until <= now_(); }
  /// Drops the entries whose hold ended, at most once a second.
  void forget_expired();

  std::function<clock::time_point()> now_;
  std::map<std::string, entry, std::less<>> entries_;
  std::int64_t revision_ = 0;
  clock::time_point next_sweep_{};
};

}  // namespace porthole::server
