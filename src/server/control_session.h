#pragma once
// One client's control connection on the server: its tunnels, its proxy
// pool, heartbeats, and the messages queued for it.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mux/session.h"
#include "net/channel.h"
#include "net/event.h"
#include "net/frame_io.h"
#include "net/stream.h"
#include "proto/messages.h"
#include "server/connection_limits.h"
#include "server/proxy_pool.h"
#include "server/token_limits.h"
#include "server/tunnel.h"

namespace porthole::server {

struct metrics;
class server;

/// One of a client's multiplexed connections, and the shard (thread) it
/// lives on: it is used there only (docs/THREADS.md).
struct mux_link {
  std::shared_ptr<mux::session> session;
  std::size_t shard = 0;
  net::asio::any_io_executor executor;
  explicit operator bool() const { return session != nullptr; }
};

/// Takes a proxy connection from the pool of the client serving `t` and
/// starts it: StartProxy{url, client_addr}, then `first_bytes`, in one write.
/// A stale pooled connection fails that write and another is taken. With a
/// multiplexed connection, a stream on it instead (on another shard: one
/// that runs each operation there). nullptr if the client is gone or gives
/// no connection before `deadline`. On the server's own thread.
/// What a stream for an HTTP/2 request asks of its multiplexed connection,
/// for a client that negotiated "stream_windows" (ignored otherwise, and on
/// a pooled proxy connection).
struct stream_extras {
  std::uint32_t window = 0;  ///< its own window (mux::session::open); 0: the connection's
  std::string proto;         ///< how the public request came ("HTTP/2"), for the capture
};

net::asio::awaitable<std::unique_ptr<net::channel>> start_proxy(
    std::shared_ptr<tunnel> t, std::string client_addr, std::string first_bytes,
    std::chrono::steady_clock::time_point deadline, stream_extras extras = {});

/// On the shard of `via`: a stream on that multiplexed connection for a
/// public connection of `url`, with `first_bytes` written behind its OPEN;
/// nullptr if the connection is gone. Counted in `counters` (that shard's).
net::asio::awaitable<std::unique_ptr<net::channel>> open_stream(mux_link via, std::string url,
                                                                std::string client_addr,
                                                                std::string first_bytes,
                                                                std::shared_ptr<metrics> counters,
                                                                stream_extras extras = {});

/// One public connection proxied to a client, counted against the client's
/// max_conns_per_client (and its token's max_conns, if any) while it lives.
class public_conn_slot {
 public:
  explicit public_conn_slot(std::shared_ptr<std::size_t> count,
                            std::shared_ptr<std::size_t> token_count = nullptr)
      : count_(std::move(count)), token_count_(std::move(token_count)) {
    ++*count_;
    if (token_count_) {
      ++*token_count_;
    }
  }
  public_conn_slot(public_conn_slot&& o) noexcept = default;
  public_conn_slot& operator=(public_conn_slot&& o) noexcept = default;
  ~public_conn_slot() {
    if (count_) {
      --*count_;
    }
    if (token_count_) {
      --*token_count_;
    }
  }

 private:
  std::shared_ptr<std::size_t> count_;
  std::shared_ptr<std::size_t> token_count_;
};

class control_session : public std::enable_shared_from_this<control_session> {
 public:
  control_session(server& srv, std::unique_ptr<net::tls_stream> stream, net::frame_reader reader,
                  std::string client_id, int pool_target, bool mux_granted, std::string peer,
                  bool standby = false, bool muxes_granted = false);
  ~control_session();

  /// Answers Auth with `resp`, fills the pool and serves the client until it
  /// leaves, breaks the protocol, goes silent, or close() is called.
  net::asio::awaitable<void> run(proto::auth_resp resp);

  /// The client negotiated "stream_windows": its multiplexed connections may
  /// open streams with windows of their own (open_stream's `window`).
  void allow_stream_windows() { stream_windows_ = true; }

  /// The client sent porthole's extensions in Auth (an ngrok 1.x client
  /// does not): its tunnels may be offered to the public over HTTP/2.
  void set_porthole_client() { porthole_client_ = true; }
  bool porthole_client() const { return porthole_client_; }

  /// Queues a message; messages go out in order, several per TLS record.
  void send(const proto::message& m);

  /// Ends the session (idempotent): closes the connection and the pool, and
  /// gives the tunnels back to the server.
  void close();

  /// A node of a cluster that shuts down: ends the control connection (the
  /// client moves to another node and claims its URLs there) and gives the
  /// tunnels back, but leaves the multiplexed connection to finish the
  /// streams in flight; it goes with the process.
  void move_away();

  proxy_pool& pool() { return pool_; }

  /// The server's counters (/metrics), the ones of this thread.
  metrics& counters();
  /// The counters of shard `i`, used on that shard only.
  std::shared_ptr<metrics> shard_counters(std::size_t i);

  /// Serves one of the client's multiplexed connections (extension "mux")
  /// until it ends. Without the extension "muxes" a newer one replaces an
  /// older one; with it, each is one more, and past max_mux_connections the
  /// oldest goes.
  net::asio::awaitable<void> serve_mux(std::unique_ptr<net::tls_stream> conn, std::string initial,
                                       std::string peer);

  /// The live multiplexed connection with the fewest streams, if the client
  /// has one: where a new public connection goes. Ties go round in turn.
  /// With `on_shard`, one on that shard if there is one (a connection served
  /// there then needs no other thread).
  mux_link mux(std::optional<std::size_t> on_shard = std::nullopt);
  bool mux_granted() const { return mux_granted_; }
  const std::string& client_id() const { return client_id_; }
  const std::string& peer() const { return peer_; }
  std::vector<std::shared_ptr<tunnel>>& tunnels() { return tunnels_; }
  bool closed() const { return closed_; }

  /// A client's second connection, standing by for the tunnels it has on
  /// another node (extension "standby") until Promote.
  bool standby() const { return standby_; }
  void set_standby(bool on) { standby_ = on; }

  /// A slot for one more public connection, or nullopt (logged, at most once
  /// a second) when the client already has max_conns_per_client.
  std::optional<public_conn_slot> admit_public(std::string_view public_peer, std::string_view url);
  /// The same, counting and logging nothing when there is no slot (the
  /// caller then goes the way that calls admit_public()).
  std::optional<public_conn_slot> try_admit_public();
  std::size_t public_conns() const { return *public_conns_; }

  /// The authtoken the client authenticated with; nullptr on a server that
  /// takes any client.
  const std::shared_ptr<token_account>& account() const { return account_; }
  void set_account(std::shared_ptr<token_account> a) { account_ = std::move(a); }

 private:
  net::asio::awaitable<void> read_loop();
  net::asio::awaitable<void> write_loop();
  net::asio::awaitable<void> heartbeat_watch();

  server& server_;
  std::unique_ptr<net::tls_stream> stream_;
  net::frame_reader reader_;
  std::string client_id_;
  std::string peer_;
  proxy_pool pool_;
  std::vector<std::shared_ptr<tunnel>> tunnels_;
  std::vector<mux_link> muxes_;  ///< oldest first
  bool mux_granted_ = false;
  bool muxes_granted_ = false;
  bool stream_windows_ = false;  ///< the client takes streams with windows of their own
  bool porthole_client_ = false;
  bool standby_ = false;
  /// Where the client's first multiplexed connection goes; the others
  /// follow on the next shards (clients with one spread over the shards).
  std::size_t first_shard_ = 0;
  std::size_t next_mux_ = 0;  ///< where mux() starts looking, one further each time
  std::deque<std::string> outbox_;
  net::event outbox_ready_;
  net::event closing_;
  std::chrono::steady_clock::time_point last_heard_;
  bool closed_ = false;
  log_throttle refusal_log_;
  std::shared_ptr<std::size_t> public_conns_ = std::make_shared<std::size_t>(0);
  log_throttle conn_limit_log_;
  std::shared_ptr<token_account> account_;
};

}  // namespace porthole::server
