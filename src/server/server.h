#pragma once
// portholed's composition: the listeners, the clients' control sessions, the
// routes from public names and ports to tunnels.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/stream.h"
#include "proto/messages.h"
#include "server/authtokens.h"
#include "server/config.h"
#include "server/connection_limits.h"
#include "server/metrics.h"
#include "server/tunnel.h"
#include "server/tunnel_registry.h"

namespace porthole::server {

class admin_endpoint;
class control_session;

/// The server. Everything runs on one io_context thread.
class server {
 public:
  server(net::asio::io_context& ioc, server_config cfg);
  ~server();

  /// Loads TLS, binds every listener and starts accepting. Throws
  /// std::runtime_error with a clear message (address in use, bad cert, ...).
  void start();

  /// Stops accepting, closes every client session; run() returns once all is closed.
  void stop();

  const server_config& config() const { return cfg_; }

  // The interface of control sessions and public connections.

  /// The tunnel an HTTP request for `host` (routing name) under `scheme` goes to.
  std::shared_ptr<tunnel> find_http_tunnel(std::string_view scheme, std::string_view host) const;

  /// True if the tunnels of `host` are away: their client disconnected and
  /// the name is held for it during the reconnect grace period.
  bool http_tunnel_reconnecting(std::string_view host) const { return registry_->is_held(host); }

  /// Registers the tunnels a ReqTunnel asks for; returns one NewTunnel per
  /// protocol (or one with Error set).
  std::vector<proto::new_tunnel> open_tunnels(const std::shared_ptr<control_session>& session,
                                              const proto::req_tunnel& req);

  /// Removes a session's routes and holds its URLs for the reconnect grace period.
  void close_tunnels(control_session& session);

  /// CloseTunnel: removes one of the session's tunnels and frees its URL at
  /// once (no grace period: the client gave it up). Unknown URLs are ignored.
  void close_tunnel(control_session& session, std::string_view url);

  /// The live session of a client, if any.
  std::shared_ptr<control_session> find_session(std::string_view client_id) const;

  net::asio::io_context& io_context() { return ioc_; }

  /// Public and tunnel connections being served now.
  std::size_t active_connections() const { return active_; }

  /// The counts /metrics shows; shared with what may outlive the server.
  metrics& counters() { return *metrics_; }
  const std::shared_ptr<metrics>& shared_counters() const { return metrics_; }

  /// The admin endpoint's address, if it is enabled (after start()).
  std::optional<net::tcp::endpoint> admin_endpoint_address() const;

 private:
  struct listener;
  void drop_tunnel(control_session& session, const tunnel& t,
                   tunnel_registry::clock::time_point hold_until);
  struct tcp_endpoint;

  void listen(listener& l);
  net::asio::awaitable<void> accept_loop(listener& l);
  net::asio::awaitable<void> serve_tls(net::tcp::socket sock, ip_connection_counts::slot counted_ip,
                                       bool tunnel_only, bool public_only);
  net::asio::awaitable<void> serve_plain_http(net::tcp::socket sock,
                                              ip_connection_counts::slot counted_ip);
  net::asio::awaitable<void> serve_tunnel_client(std::unique_ptr<net::tls_stream> stream,
                                                 handshake_slots::slot pending,
                                                 ip_connection_counts::slot counted_ip);
  /// Closes a connection over its address's limit and logs it (rate-limited).
  void refuse_over_ip_limit(net::tcp::socket& sock, std::string_view port, std::size_t limit,
                            std::string_view flag);
  net::asio::awaitable<void> serve_tcp_tunnel(std::shared_ptr<tcp_endpoint> ep);
  net::asio::awaitable<void> proxy_tcp(std::shared_ptr<tunnel> t, net::tcp::socket public_conn);
  std::optional<proto::new_tunnel> open_tcp_tunnel(const std::shared_ptr<control_session>& session,
                                                   const proto::req_tunnel& req);
  /// Follows tokens.db: closes the clients of revoked tokens, writes last-used times.
  net::asio::awaitable<void> watch_tokens();
  std::shared_ptr<token_account> account_for(const token_identity& who);
  /// The NewTunnel error if `host` is a subdomain another token reserved, else "".
  std::string reserved_refusal(const control_session& session, std::string_view host) const;
  std::string metrics_page();
  net::asio::awaitable<void> forget_client_later(std::string client_id);

  net::asio::io_context& ioc_;
  server_config cfg_;
  std::unique_ptr<net::asio::ssl::context> tls_;
  std::unique_ptr<tunnel_registry> registry_;
  std::unique_ptr<authtokens> tokens_;
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
  std::map<std::string, std::shared_ptr<tunnel>, std::less<>> http_routes_;
  std::map<std::string, std::shared_ptr<tcp_endpoint>, std::less<>> tcp_endpoints_;  ///< by URL
  std::map<std::string, std::weak_ptr<control_session>, std::less<>> sessions_;  ///< by client id
  std::map<std::string, std::string, std::less<>>
      client_tokens_;  ///< client id -> token it authenticated with
  bool stopping_ = false;
  std::size_t active_ = 0;
  std::shared_ptr<metrics> metrics_ = std::make_shared<metrics>();
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
