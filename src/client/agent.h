#pragma once
// The client agent: one control connection to the server, with reconnects,
// and the proxy connections that carry public traffic to local services.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/agent_observer.h"
#include "client/config.h"
#include "client/local_pool.h"
#include "inspect/capture_writer.h"
#include "mux/session.h"
#include "net/address.h"
#include "net/channel.h"
#include "net/event.h"
#include "net/stream.h"
#include "proto/messages.h"

namespace porthole::client {

/// How public connections reach the client, as the server agreed at connect.
enum class transport_kind {
  mux,    ///< porthole's multiplexed connection (the "mux" extension)
  pool,   ///< a porthole server, without mux: pooled proxy connections
  ngrok,  ///< an ngrok 1.x server: pooled proxy connections, the base protocol
};

/// "mux", "pool" or "ngrok".
std::string_view to_string(transport_kind t);

/// What the client serves once every tunnel it asked for has its answer.
struct settled_tunnels {
  std::string client_id;
  std::string server;  ///< host:port of the server's tunnel listener
  transport_kind transport = transport_kind::ngrok;
  /// 1 on the first connection to the server, one more after each reconnect.
  std::uint64_t connection = 0;
  std::vector<live_tunnel> tunnels;  ///< in configuration order; refused ones are not here
  /// host:port of the node where a second connection stands by for every
  /// tunnel (extension "standby"), or "" while there is none.
  std::string standby;

  bool operator==(const settled_tunnels&) const = default;
};

/// Why the agent stopped.
struct agent_result {
  int exit_code = 0;
  std::string error;  ///< what to tell the user when exit_code != 0
};

/// Threads (docs/THREADS.md): the agent's state lives on `ioc`'s thread, and
/// every public member is called there. Each multiplexed connection lives
/// on one shard (an event loop of its own thread), with the streams it
/// carries, their local connections and their capture; what a stream needs
/// of the agent is an immutable snapshot (the tunnels) or posted to `ioc`
/// (what the observer is told).
class agent {
 public:
  /// `shards`: the executors multiplexed connections are spread over, in
  /// turn (net::shards::executors(); the first is normally `ioc`'s). None:
  /// everything on `ioc`. Proxy connections (without "mux") stay on `ioc`.
  agent(net::asio::io_context& ioc, client_config cfg,
        std::vector<net::asio::any_io_executor> shards = {});
  ~agent();

  /// Connects, opens the tunnels and serves until stop() or a fatal error
  /// (refused authtoken or tunnel, untrusted server certificate). Losing the
  /// server is not fatal: it reconnects with backoff and asks for the same
  /// tunnels again.
  net::asio::awaitable<agent_result> run();

  /// Ends run() soon, with exit code 0. A server that understands
  /// CloseTunnel is given the tunnels' URLs back first (waiting at most
  /// client_config::leave_timeout), so that they are free at once.
  void stop();

  /// What update_tunnels() changed.
  struct tunnel_changes {
    std::vector<std::string> added, removed, changed;  ///< tunnel_spec::key()s
    std::size_t unchanged = 0;
  };

  /// Makes `next` the tunnels to serve (a reloaded config file): tunnels added
  /// are asked for, removed ones closed, changed ones closed and asked for
  /// again; the others, and their open connections, are not disturbed. A
  /// removed tunnel's URL is given back at once if the server speaks the
  /// close_tunnel extension; otherwise it stays registered (unserved) until
  /// the control connection ends. Call on the agent's executor.
  tunnel_changes update_tunnels(std::vector<tunnel_spec> next);

  using live_tunnel = client::live_tunnel;
  /// The tunnels up now, in configuration order.
  std::vector<live_tunnel> tunnels() const;

  /// Captures the HTTP exchanges of http and https tunnels into `writer`,
  /// keeping up to `body_limit` bytes of each body. Capturing never holds up
  /// or changes the relayed bytes. Each connection keeps the writer alive
  /// while it lasts.
  void capture_into(std::shared_ptr<inspect::capture_writer> writer, std::size_t body_limit);

  /// Tells `observer` what happens from now on; null stops telling. It must
  /// outlive the io_context: a connection still open when the context goes
  /// says so as it ends. With an observer, the HTTP exchanges of http
  /// and https tunnels are followed even when nothing captures them.
  void observe(agent_observer* observer) { observer_ = observer; }

  /// Called with the client id each time the server gives one (on every
  /// connect; the same one after a reconnect), to keep it for the next run.
  void on_client_id(std::function<void(const std::string&)> f) { on_client_id_ = std::move(f); }

  /// Called with what the client serves each time that changes while no
  /// ReqTunnel awaits its answer: once the tunnels asked for at connect are
  /// answered (after every reconnect too, `connection` counting), and after
  /// a reload's tunnels are.
  void on_settled(std::function<void(const settled_tunnels&)> f) { on_settled_ = std::move(f); }

 private:
  struct session;

  /// A TLS connection to `to`, whose certificate must be valid for
  /// `tls_name` (the name the user gave; a node's address learned from
  /// another node is an IP the certificate need not name).
  /// Made on shard `shard`, whose own TLS session it resumes.
  net::asio::awaitable<std::tuple<net::error_code, std::unique_ptr<net::tls_stream>>> connect(
      net::host_port to, std::string tls_name, std::size_t shard = 0);
  /// A control connection to `to`, authenticated: the session, or why the
  /// client must stop (a refusal of the main connection), or neither.
  net::asio::awaitable<std::tuple<std::shared_ptr<session>, std::optional<agent_result>>>
  open_session(net::host_port to, std::string tls_name, bool standby);
  net::asio::awaitable<std::optional<agent_result>> serve_once(bool& was_up);
  /// Makes the standby connection the main one (Promote) and serves until it ends.
  net::asio::awaitable<std::optional<agent_result>> serve_promoted(std::shared_ptr<session> s,
                                                                   bool& was_up);
  /// Runs a session's loops until its connection ends.
  net::asio::awaitable<void> serve_session(std::shared_ptr<session> s);
  /// Keeps a standby connection to another node while the server offers it.
  net::asio::awaitable<void> keep_standby();
  void standby_answer(session& s, const proto::new_tunnel& nt);
  /// Closes the standby connection (the tunnels changed): another is opened
  /// with the new ones once they are settled.
  void drop_standby();
  void end_now();
  net::asio::awaitable<void> leave_by(std::chrono::steady_clock::time_point deadline);
  net::asio::awaitable<void> proxy_connection(net::host_port to, std::string tls_name);
  net::asio::awaitable<void> read_loop(session& s);
  /// Runs on the multiplexed connection's own shard.
  net::asio::awaitable<void> drain(std::shared_ptr<mux::session> m);
  net::asio::awaitable<void> mux_loop(session& s);
  /// How many multiplexed connections to keep where the server takes
  /// several: --mux-conns, or one per shard.
  std::size_t mux_count() const;
  net::asio::awaitable<void> keep_mux(session& s, std::size_t slot);
  /// On shard `shard`: a TLS connection to `to`, RegMux on it, and the mux
  /// session made of it, whose streams are served on that shard.
  net::asio::awaitable<std::tuple<net::error_code, std::shared_ptr<mux::session>>> open_mux(
      std::size_t shard, net::host_port to, std::string tls_name, std::string client_id);
  net::asio::awaitable<void> serve_stream(std::unique_ptr<mux::stream> st, proto::start_proxy info,
                                          std::size_t shard);
  net::asio::awaitable<void> serve_proxied(net::channel& tunnel,
                                           std::shared_ptr<const tunnel_spec> spec,
                                           proto::start_proxy info, std::size_t shard,
                                           std::string initial = {});
  /// An http tunnel's public connection: its requests forwarded to the local
  /// service on kept connections (local_http.h), captured if asked.
  net::asio::awaitable<void> serve_http(net::channel& tunnel,
                                        std::shared_ptr<const tunnel_spec> spec,
                                        proto::start_proxy info, std::size_t shard,
                                        std::string initial);
  /// Runs `tell` with the observer, if any, on the agent's thread.
  void tell_observer(std::function<void(agent_observer&)> tell);
  net::asio::awaitable<void> ping_loop(session& s);
  net::asio::awaitable<void> write_loop(session& s);
  void send(session& s, const proto::message& m);
  /// Sends ReqTunnel for t; returns its ReqId.
  std::string request_tunnel(session& s, const tunnel_spec& t);
  void handle_new_tunnel(session& s, const proto::new_tunnel& nt);
  void give_up_tunnel(const tunnel_spec& t);
  /// From any shard: the tunnel a public URL is served by (the snapshot).
  std::shared_ptr<const tunnel_spec> find_tunnel(const std::string& url) const;
  /// Makes url_to_tunnel_ as it is now what find_tunnel() reads.
  void publish_tunnels();
  void announce_tunnels();
  void tell_if_settled();
  static int on_new_session(SSL* ssl, SSL_SESSION* session);

  net::asio::io_context& ioc_;
  client_config cfg_;
  net::asio::ssl::context tls_;
  /// The newest TLS session the server gave on each shard's connections,
  /// offered on the shard's next connection so that it resumes instead of
  /// doing a full handshake. One per shard: a session object is used by
  /// the connections of one thread only.
  std::vector<std::shared_ptr<SSL_SESSION>> tls_sessions_;
  /// Makes the next server of the list (given, then learned) the current one.
  void next_server();
  /// Adds the addresses a cluster node told of, after the given ones.
  void learn_servers(const std::vector<std::string>& nodes);

  std::vector<net::host_port> servers_;  ///< --server-addr's list, then the nodes learned
  std::size_t given_servers_ = 0;        ///< how many of servers_ the user gave
  /// What the certificate of a node at `to`, learned from another node, must
  /// name: the name the user gave (the nodes of a cluster share a
  /// certificate for it), or, when the user gave an IP address, `to`'s own.
  std::string learned_tls_name(const net::host_port& to, const std::string& given) const;
  std::size_t server_index_ = 0;
  std::size_t failed_in_a_row_ = 0;  ///< servers tried since the last accepted connection
  std::string server_host_;          ///< the current server
  std::string server_port_;
  std::string client_id_;
  std::function<void(const std::string&)> on_client_id_;
  std::function<void(const settled_tunnels&)> on_settled_;
  std::optional<settled_tunnels> told_;  ///< what on_settled_ was last called with
  std::uint64_t connections_ = 0;        ///< control connections the server accepted
  /// Public URL -> what it forwards to, as it was when the tunnel came up: a
  /// connection keeps its snapshot however the tunnel list changes.
  using tunnel_map = std::map<std::string, std::shared_ptr<const tunnel_spec>, std::less<>>;
  tunnel_map url_to_tunnel_;
  /// url_to_tunnel_ as published for the shards: replaced whole, never changed.
  std::atomic<std::shared_ptr<const tunnel_map>> published_tunnels_;
  /// tunnel_spec::key() -> the public URLs it has (two for "http+https").
  std::map<std::string, std::vector<std::string>, std::less<>> key_to_url_;
  /// tunnel_spec::key() -> the port the server chose for a tcp tunnel that
  /// named none, asked for again after a reconnect.
  std::map<std::string, std::uint16_t, std::less<>> assigned_ports_;
  /// tunnel_spec::key() -> the subdomain the server chose for an http tunnel
  /// that named none, asked for again after a reconnect.
  std::map<std::string, std::string, std::less<>> assigned_subdomains_;
  /// The executors of the shards; shards_[0] is where the agent's state is.
  std::vector<net::asio::any_io_executor> shards_;
  /// Idle keep-alive connections to the local HTTP services of http
  /// tunnels, one pool per shard, used on that shard only.
  std::vector<std::shared_ptr<local_pool>> local_pools_;
  std::shared_ptr<inspect::capture_writer> capture_;
  std::size_t capture_body_limit_ = 0;
  agent_observer* observer_ = nullptr;
  session* current_ = nullptr;
  /// The second control connection, to another node (extension "standby").
  std::shared_ptr<session> standby_;
  net::event standby_wanted_;  ///< the main connection changed or settled
  net::event stopping_;
  /// Read by the shards (a connection that ends quietly once stopping).
  std::atomic<bool> stopped_ = false;
};

}  // namespace porthole::client
