#pragma once
// portholed's composition: the listeners, the clients' control sessions, the
// routes from public names and ports to tunnels.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "net/event.h"
#include "net/frame_io.h"
#include "net/stream.h"
#include "net/tls.h"
#include "proto/messages.h"
#include "server/authtokens.h"
#include "server/config.h"
#include "server/connection_limits.h"
#include "server/control_session.h"
#include "server/directory.h"
#include "server/hostname_policy.h"
#include "server/metrics.h"
#include "server/node_link.h"
#include "server/tunnel.h"

namespace porthole::server {

class admin_endpoint;
class control_session;

/// Where a started server's listeners are bound (the ports the OS chose for
/// port 0 included); a disabled listener has none.
struct listener_addresses {
  net::tcp::endpoint tunnel;
  std::optional<net::tcp::endpoint> https;  ///< equal to `tunnel` when they share a port
  std::optional<net::tcp::endpoint> http;
  std::optional<net::tcp::endpoint> admin;
  std::optional<net::tcp::endpoint> node;  ///< the node-to-node listener of a cluster node
};

/// The server. Its state, the control sessions and every decision (routes,
/// limits, tokens) live on the io_context's thread; with use_shards(), the
/// multiplexed connections and the public connections they carry run on
/// the shards' threads, touching only what is theirs (docs/THREADS.md).
class server {
 public:
  /// `names` is the directory of a cluster; nullptr for a single node's own.
  /// `now` is the clock reconnect grace periods are measured on (a test's
  /// fake one; it is also the clock of the single node's own directory).
  /// `tokens` are a cluster's authtokens; nullptr for <state-dir>/tokens.db.
  server(net::asio::io_context& ioc, server_config cfg, std::shared_ptr<directory> names = nullptr,
         std::function<directory::clock::time_point()> now = directory::clock::now,
         std::shared_ptr<token_source> tokens = nullptr);
  ~server();

  /// Loads TLS, binds every listener and starts accepting. Throws
  /// std::runtime_error with a clear message (address in use, bad cert, ...).
  void start();

  /// Stops accepting, closes every client session; run() returns once all is closed.
  void stop();

  const server_config& config() const { return cfg_; }

  /// Before start(): the executors of the loops (one per thread) the
  /// clients' multiplexed connections, and the public connections they
  /// carry, are spread over (net::shards::executors()); the first is the
  /// server's own io_context's. Without it, everything runs on that one.
  void use_shards(std::vector<net::asio::any_io_executor> executors);
  std::size_t shard_count() const { return shards_.size(); }
  net::asio::any_io_executor shard_executor(std::size_t i) const { return shards_[i].executor; }
  /// Shard i's own counters, summed for /metrics; used on that shard only.
  std::shared_ptr<metrics> shard_counters(std::size_t i) const { return shards_[i].counters; }
  /// The shard a new client's first multiplexed connection goes to: each in turn.
  std::size_t next_client_shard() { return next_client_shard_++ % shards_.size(); }

  /// True once stop() was called: connections in flight finish, nothing new
  /// starts. From any thread.
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

  // The interface of control sessions and public connections.

  /// Where a public HTTP request for `host` (routing name) under `scheme` goes.
  route find_route(std::string_view scheme, std::string_view host) const {
    return directory_->find(scheme, host);
  }

  /// See directory::catching_up.
  bool names_catching_up() const { return directory_->catching_up(); }

  /// Claims and routes the tunnels a ReqTunnel asks for; gives one NewTunnel
  /// per protocol (or one with Error set).
  net::asio::awaitable<std::vector<proto::new_tunnel>> open_tunnels(
      std::shared_ptr<control_session> session, proto::req_tunnel req);

  /// Promote on a standby session: claims its tunnels here, making it the
  /// client's main connection. False (and the session is to close) if a
  /// name could not be claimed.
  net::asio::awaitable<bool> promote(std::shared_ptr<control_session> session);

  /// Removes a session's routes and holds its URLs for the reconnect grace period.
  void close_tunnels(control_session& session);

  /// CloseTunnel: removes one of the session's tunnels and frees its URL at
  /// once (no grace period: the client gave it up). Unknown URLs are ignored.
  void close_tunnel(control_session& session, std::string_view url);

  /// The live session of a client, if any.
  std::shared_ptr<control_session> find_session(std::string_view client_id) const;

  net::asio::io_context& io_context() { return ioc_; }

  /// A public connection handed to the node that serves its name: the
  /// stream to that node once it accepted, or why not (and whether asking
  /// the directory again and retrying may help).
  struct relay_result {
    std::unique_ptr<net::tls_stream> stream;
    std::string error;
    bool retry = false;
  };
  net::asio::awaitable<relay_result> open_relay(remote_owner owner, relay_request req);

  /// Public and tunnel connections being served now.
  std::size_t active_connections() const { return active_; }

  /// The counts /metrics shows; shared with what may outlive the server.
  metrics& counters() { return *metrics_; }
  const std::shared_ptr<metrics>& shared_counters() const { return metrics_; }

  /// The admin endpoint's address, if it is enabled (after start()).
  std::optional<net::tcp::endpoint> admin_endpoint_address() const;

  /// Where each listener is bound, after start().
  listener_addresses listening_addresses() const;

 private:
  struct listener;
  void join_cluster();
  std::vector<std::string> dev_certificate_ips() const;
  net::asio::awaitable<void> leave_cluster();
  net::asio::awaitable<void> follow_tcp_names();
  net::asio::awaitable<void> serve_node(net::tcp::socket sock);
  net::asio::awaitable<void> relay_tcp(std::string url, net::tcp::socket public_conn);
  net::asio::awaitable<void> proxy_relayed_tcp(std::shared_ptr<tunnel> t,
                                               std::unique_ptr<net::tls_stream> conn,
                                               std::string client_ip);
  void drop_tunnel(const tunnel& t, directory::clock::time_point hold_until);
  /// Until when a disconnected client's names are held for it.
  directory::clock::time_point hold_until() const;
  claimant claimant_of(const control_session& session) const;
  /// Adds tunnels just claimed to their session; false (and the names held)
  /// if the session ended while the claim was on its way.
  bool keep_claimed(control_session& session, const std::vector<std::shared_ptr<tunnel>>& claimed);
  struct bound_port {
    net::tcp::acceptor acceptor;
    net::error_code error;
  };
  /// A listening socket on a TCP tunnel port (0: one the OS picks).
  bound_port bind_tcp_port(std::uint16_t port);
  struct tcp_listener;

  void listen(listener& l);
  net::asio::awaitable<void> accept_loop(listener& l);
  net::asio::awaitable<void> serve_tls(net::tcp::socket sock, public_peer from,
                                       ip_connection_counts::slot counted_ip, bool tunnel_only,
                                       bool public_only);
  /// `head_seen`: take() already looked for the first request head (it
  /// came with the connection) and decided to serve it on this loop.
  net::asio::awaitable<void> serve_plain_http(net::tcp::socket sock, public_peer from,
                                              ip_connection_counts::slot counted_ip,
                                              bool head_seen);
  /// A connection on the tunnel port, classified by its first message: a
  /// client's control connection (Auth), a proxy connection (RegProxy) or a
  /// multiplexed one (RegMux); anything else is refused.
  net::asio::awaitable<void> serve_tunnel_client(std::unique_ptr<net::tls_stream> stream,
                                                 handshake_slots::slot pending,
                                                 ip_connection_counts::slot counted_ip);
  net::asio::awaitable<void> serve_client(std::unique_ptr<net::tls_stream> stream,
                                          net::frame_reader reader, proto::auth auth,
                                          std::string peer);
  net::asio::awaitable<void> add_proxy_connection(std::unique_ptr<net::tls_stream> stream,
                                                  net::frame_reader reader, std::string client_id,
                                                  std::string peer,
                                                  ip_connection_counts::slot counted_ip);
  net::asio::awaitable<void> serve_mux_connection(std::unique_ptr<net::tls_stream> stream,
                                                  net::frame_reader reader, std::string client_id,
                                                  std::string peer);
  /// Why a connection on the tunnel port is turned away before it is a
  /// client's; all fields optional (nothing counted, logged or said).
  struct turn_away {
    std::optional<error_kind> counted{};  ///< the /metrics error count it adds to
    log_throttle* log = nullptr;          ///< logged at warning level through it
    std::string_view message{};
    std::string_view detail_key{};  ///< one field beside the peer, if any
    std::string detail{};
  };
  /// Counts, logs (rate-limited) and closes: the one way out for a
  /// connection the tunnel port does not serve.
  void refuse(net::tls_stream& stream, std::string_view peer, const turn_away& why);
  /// Tells a refused client why (an AuthResp with Error), before refuse().
  net::asio::awaitable<void> answer_auth(net::tls_stream& stream, proto::auth_resp refusal);
  /// Counts and logs (rate-limited) a connection closed over its address's limit.
  void refuse_over_ip_limit(const public_peer& from, std::string_view port, std::size_t limit,
                            std::string_view flag);
  net::asio::awaitable<void> serve_tcp_tunnel(std::shared_ptr<tcp_listener> l);
  net::asio::awaitable<void> proxy_tcp(std::shared_ptr<tunnel> t, net::tcp::socket public_conn);
  static net::asio::awaitable<void> relay_on_shard(mux_link via, std::string url, std::string peer,
                                                   net::tcp::socket public_conn,
                                                   std::shared_ptr<metrics> counters,
                                                   std::chrono::seconds idle_timeout);
  net::asio::awaitable<proto::new_tunnel> open_tcp_tunnel(std::shared_ptr<control_session> session,
                                                          proto::req_tunnel req);
  /// ReqTunnel on a standby session: the exact names the client has on its
  /// main node, served here too while they are its.
  net::asio::awaitable<std::vector<proto::new_tunnel>> open_standby_tunnels(
      std::shared_ptr<control_session> session, proto::req_tunnel req,
      std::vector<std::string> protocols);
  net::asio::awaitable<std::vector<proto::new_tunnel>> open_http_tunnels(
      std::shared_ptr<control_session> session, proto::req_tunnel req,
      std::vector<std::string> protocols);
  /// Follows the tokens (tokens.db or etcd): closes the clients of revoked
  /// tokens, writes last-used times.
  net::asio::awaitable<void> watch_tokens();
  std::shared_ptr<token_account> account_for(const token_identity& who);
  /// The NewTunnel error if `host` is a subdomain another token reserved, else "".
  std::string reserved_refusal(const control_session& session, std::string_view host) const;
  net::asio::awaitable<std::string> metrics_page();
  /// A public connection for `t` goes to the shard of the client's
  /// multiplexed connection with the fewest streams, if that is not this
  /// one; it is then admitted here (`slot`, held here while it lives).
  struct pinned {
    std::shared_ptr<tunnel> t;
    mux_link via;
    public_conn_slot slot;
  };
  std::optional<pinned> pin(const std::shared_ptr<tunnel>& t, std::string_view peer);
  /// A plain HTTP connection's first request head, looked at without being
  /// read (it arrives with the connection): its tunnel's shard, if not this
  /// one. Not decided (nullopt) while nothing has arrived.
  std::optional<std::optional<pinned>> pin_by_head(int fd, std::string_view peer);
  /// A connection just accepted (`fd`), given to the loop that serves it.
  void take(listener& l, int fd, const net::tcp::endpoint& from);
  net::asio::awaitable<void> serve_pinned_http(net::tcp::socket sock, public_peer from,
                                               ip_connection_counts::slot counted_ip, pinned to);
  net::asio::awaitable<void> on_its_shard(net::tcp::socket sock, public_peer from, pinned to);
  std::pair<bool, std::string> health() const;
  net::asio::awaitable<void> forget_client_later(std::string client_id);

  net::asio::io_context& ioc_;
  server_config cfg_;
  std::unique_ptr<net::asio::ssl::context> tls_;
  /// Whether public HTTPS offers h2 to a connection with this SNI name.
  std::function<bool(std::string_view)> offers_h2_;
  std::shared_ptr<directory> directory_;
  std::function<directory::clock::time_point()> now_;
  std::unique_ptr<net::asio::ssl::context> node_server_tls_;  ///< the node-to-node listener
  std::unique_ptr<net::asio::ssl::context> node_client_tls_;  ///< relays to other nodes
  std::string node_addr_;                                     ///< as bound
  std::string own_tunnel_addr_;  ///< told to clients (AuthResp Node); "" if bound to all
  /// The last TLS session with each node (by its node address), resumed by
  /// the next relay to it.
  std::unique_ptr<net::tls_session_cache> node_sessions_;
  net::event tcp_names_changed_;
  std::set<std::string, std::less<>> unbindable_tcp_names_;  ///< other nodes' ports in use here
  std::unique_ptr<authtokens> tokens_;
  net::event tokens_changed_;  ///< the token source says its tokens may have changed
  std::map<std::string, std::weak_ptr<token_account>, std::less<>> accounts_;  ///< by token key
  hostname_policy names_;
  ip_connection_counts tunnel_ips_;  ///< open connections per address, tunnel port
  ip_connection_counts public_ips_;  ///< open connections per address, public ports
  handshake_slots handshakes_;       ///< connections not yet past their first message
  log_throttle ip_limit_log_;
  log_throttle handshake_timeout_log_;
  log_throttle first_message_log_;
  log_throttle bad_first_log_;
  log_throttle reg_proxy_log_;
  log_throttle surplus_log_;
  std::vector<std::unique_ptr<listener>> listeners_;
  std::uint16_t http_port_ = 0;
  std::uint16_t https_port_ = 0;
  /// The public ports of TCP tunnels, by URL; where a connection goes is the directory's.
  std::map<std::string, std::shared_ptr<tcp_listener>, std::less<>> tcp_listeners_;
  std::map<std::string, std::weak_ptr<control_session>, std::less<>> sessions_;  ///< by client id
  std::map<std::string, std::string, std::less<>>
      client_tokens_;  ///< client id -> token it authenticated with
  std::atomic<bool> stopping_ = false;
  std::size_t active_ = 0;
  std::shared_ptr<metrics> metrics_ = std::make_shared<metrics>();
  struct shard {
    net::asio::any_io_executor executor;
    std::shared_ptr<metrics> counters;
  };
  std::vector<shard> shards_;  ///< [0] is this io_context, with metrics_
  std::size_t next_client_shard_ = 0;
  std::string peek_buffer_;  ///< pin_by_head()'s, on this loop only
  std::unique_ptr<admin_endpoint> admin_;

  /// Counts a connection while it is served.
  struct active_guard {
    explicit active_guard(std::size_t& n) : n_(n) { ++n_; }
    ~active_guard() { --n_; }
    active_guard(const active_guard&) = delete;
    active_guard& operator=(const active_guard&) = delete;
    std::size_t& n_;
  };

  friend class control_session;
};

}  // namespace porthole::server
