#pragma once
// The directory of a cluster: several portholed nodes share one namespace of
// public names in etcd. Each node holds a lease; a name is claimed with a
// transaction that succeeds only if the key does not exist (or is the same
// client's at the revision read), bound to the lease, so a node that stops
// renewing loses its names and two nodes never both win one. The key's
// revision is the claim's fencing token. Every node follows the names with a
// watch, as hints: routing a public connection to another node is checked by
// that node against its own claim.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "net/event.h"
#include "server/directory.h"

namespace porthole::cluster {

/// A node of the cluster, as it registered itself.
struct node_info {
  std::string id;
  std::string node_addr;    ///< node-to-node listener
  std::string tunnel_addr;  ///< where tunnel clients may connect ("" if not told)
};

/// How sure a node is that its lease (and so its names) is alive.
enum class lease_state {
  alive,      ///< renewed within the last TTL
  uncertain,  ///< not renewed for a whole TTL: etcd cannot be reached
  lost,       ///< etcd said it expired: the node's names are gone
};

class etcd_directory final : public server::directory,
                             public std::enable_shared_from_this<etcd_directory> {
 public:
  struct options {
    std::chrono::seconds lease_ttl{5};
    std::string prefix = "/porthole/";
    std::chrono::milliseconds request_timeout{2000};  ///< the etcd client's
    std::string node_id{};                            ///< set by join()
    std::string node_addr{};                          ///< set by join()
    std::string tunnel_addr{};                        ///< set by join()
  };

  etcd_directory(net::asio::any_io_executor ex, std::shared_ptr<etcd_client> etcd, options o);
  ~etcd_directory() override;

  /// Grants the node's lease, registers the node, reads every name and
  /// starts following them. Throws std::runtime_error naming the problem if
  /// etcd cannot be reached or another live node has the same id.
  net::asio::awaitable<void> join(server::node_addresses here) override;

  void begin_leaving() override { leaving_ = true; }

  /// Waits (until `deadline`) for the names this node held to be taken
  /// over, then gives the lease back: what is left and the node's
  /// registration go at once.
  net::asio::awaitable<void> leave(clock::time_point deadline) override;

  std::vector<std::string> tcp_names() const override;
  std::vector<std::string> other_nodes() const override;
  std::optional<server::cluster_figures> figures() const override;

  net::asio::awaitable<server::claim_answer> claim(
      std::string name, server::claimant who,
      std::vector<std::shared_ptr<server::tunnel>> tunnels) override;
  bool takes_standby() const override { return true; }
  /// Also while the node is not sure of its lease (it was stopped past its
  /// TTL): the names it knew may have changed hands meanwhile, and the
  /// watch's news of that may still be on its way.
  bool catching_up() const override { return catching_up_ || !sure_of_lease(); }
  net::asio::awaitable<bool> stand_by(std::string name, server::claimant who,
                                      std::vector<std::shared_ptr<server::tunnel>> tunnels) override;
  void release(const server::tunnel& t, clock::time_point hold_until) override;
  server::route find(std::string_view scheme, std::string_view name) const override;
  std::vector<server::held_name> held_by(std::string_view client_id) const override;
  bool is_free(std::string_view name) const override;
  std::vector<std::shared_ptr<server::tunnel>> local_tunnels() const override;

  /// The other nodes, as last seen.
  std::vector<node_info> peers() const;
  lease_state state() const { return state_; }
  const std::string& node_id() const { return opts_.node_id; }

  /// Counts for /metrics.
  struct counters {
    std::uint64_t claims_won = 0;
    std::uint64_t claims_lost = 0;
    std::uint64_t renewals = 0;
    std::chrono::microseconds last_renew_latency{0};
  };
  const counters& counts() const { return figures_; }

 private:
  /// A name as etcd has it.
  struct record {
    server::claimant owner;
    std::string node;
    std::vector<std::string> live;   ///< schemes served now
    std::vector<std::string> held;   ///< schemes held after a disconnect
    std::int64_t held_until_ms = 0;  ///< wall clock; 0 while a scheme is live
    bool moving = false;             ///< held by a node that is shutting down
    std::int64_t mod_revision = 0;
  };
  /// A name this node won, and its tunnels by scheme.
  struct owned {
    std::map<std::string, std::shared_ptr<server::tunnel>, std::less<>> live;
    std::int64_t revision = 0;
  };

  /// A name another node's client also serves here, through its standby
  /// connection: routed here while the name's record is that client's.
  struct standing_by {
    server::claimant owner;
    std::map<std::string, std::shared_ptr<server::tunnel>, std::less<>> live;
  };

  std::string name_key(std::string_view name) const;
  std::string node_key(std::string_view id) const;
  static std::string encode(const record& r);
  static std::optional<record> decode(std::string_view json);
  bool held_now(const record& r) const;
  bool sure_of_lease() const;

  net::asio::awaitable<server::claim_answer> claim_in_etcd(
      const std::string& name, const server::claimant& who,
      const std::vector<std::shared_ptr<server::tunnel>>& tunnels);
  net::asio::awaitable<void> release_in_etcd(std::string name, std::string scheme,
                                             std::string client_id, std::int64_t hold_until_ms);
  net::asio::awaitable<void> keep_lease();
  net::asio::awaitable<void> follow_names();
  net::asio::awaitable<void> forget_expired_holds();
  net::asio::awaitable<std::int64_t> load();
  enum class registration { done, id_taken, unreachable };
  net::asio::awaitable<registration> register_node();
  void apply(const std::string& key, const std::string& value, std::int64_t mod_revision,
             bool erased);
  net::asio::awaitable<void> confirm_lost(std::string name, std::int64_t revision);
  void drop_all(std::string_view why);

  /// One operation at a time per name: a release and the claim after it
  /// (a client reconnecting) reach etcd in that order.
  net::asio::awaitable<void> lock(const std::string& name);
  void unlock(const std::string& name);

  net::asio::any_io_executor ex_;
  std::shared_ptr<etcd_client> etcd_;
  options opts_;
  std::int64_t lease_ = 0;
  lease_state state_ = lease_state::alive;
  clock::time_point last_renewed_{};  ///< when the last successful renewal was sent
  clock::time_point last_attempt_{};  ///< when the lease loop last heard from etcd, or gave up
  bool etcd_unreachable_ = false;     ///< the last renewal failed: etcd could not be reached
  std::int64_t watched_from_ = 0;
  bool registered_ = true;
  bool leaving_ = false;  ///< the node's key is in etcd under the current lease
  bool catching_up_ = false;  ///< the watch was lost and every name not read again since
  std::unique_ptr<etcd_watch> watch_;
  std::map<std::string, record, std::less<>> names_;  ///< every name, from the watch
  std::map<std::string, node_info, std::less<>> nodes_;
  std::map<std::string, owned, std::less<>> mine_;
  std::map<std::string, standing_by, std::less<>> standby_;
  std::set<std::string, std::less<>> locked_;
  net::event unlocked_;
  net::event stopping_;
  bool stopped_ = false;
  counters figures_;
};

}  // namespace porthole::cluster
