#include "server/control_session.h"

#include <algorithm>
#include <limits>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "log/event.h"
#include "net/shards.h"
#include "server/server.h"

namespace porthole::server {

namespace asio = net::asio;
using namespace asio::experimental::awaitable_operators;

namespace {
// Frames are batched into one write up to this size: below one TLS record, so
// a peer that reads a frame's body with a single read call (ngrok 1.7) gets it whole.
constexpr std::size_t max_batch = 16000;
// Messages queued for a client that does not read them; beyond, it is dropped.
constexpr std::size_t max_outbox = 4096;
// How long the control connection may outlive a multiplexed connection of a
// client that is leaving before the loss is logged as one.
constexpr auto lost_mux_grace = std::chrono::milliseconds(500);

// Ends a multiplexed connection, on its own shard.
void close_there(const mux_link& m) {
  asio::post(m.executor, [s = m.session] { s->close(); });
}
}  // namespace

control_session::control_session(server& srv, std::unique_ptr<net::tls_stream> stream,
                                 net::frame_reader reader, std::string client_id, int pool_target,
                                 bool mux_granted, std::string peer, bool standby,
                                 bool muxes_granted)
    : server_(srv),
      stream_(std::move(stream)),
      reader_(std::move(reader)),
      client_id_(std::move(client_id)),
      peer_(std::move(peer)),
      pool_(stream_->get_executor(),
            proxy_pool::options{pool_target, srv.config().pool_idle_timeout,
                                srv.config().proxy_wait_timeout},
            [this] { send(proto::req_proxy{}); }),
      mux_granted_(mux_granted),
      muxes_granted_(muxes_granted),
      standby_(standby),
      first_shard_(srv.next_client_shard()),
      last_heard_(std::chrono::steady_clock::now()) {}

control_session::~control_session() = default;

asio::awaitable<void> control_session::run(proto::auth_resp resp) {
  auto self = shared_from_this();
  send(resp);
  pool_.start();
  co_await (read_loop() || write_loop() || heartbeat_watch());
  close();
  log::info("client disconnected", {{"client", client_id_}, {"peer", peer_}});
}

void control_session::send(const proto::message& m) {
  if (closed_) {
    return;
  }
  if (outbox_.size() >= max_outbox) {
    // The client stopped reading its control connection.
    log::warn("messages queued and unread; closing the client's control connection",
              {{"client", client_id_}, {"queued", outbox_.size()}});
    close();
    return;
  }
  ++server_.counters().messages_out[proto::type_name(m)];
  outbox_.push_back(proto::encode_framed(m));
  outbox_ready_.notify();
}

void control_session::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  net::close_stream(*stream_);
  pool_.close();
  for (const auto& m : muxes_) {
    close_there(m);
  }
  outbox_ready_.notify();
  closing_.notify();
  server_.close_tunnels(*this);
}

void control_session::move_away() {
  if (closed_) {
    return;
  }
  closed_ = true;
  net::close_stream(*stream_);
  pool_.close();
  outbox_ready_.notify();
  closing_.notify();
  server_.close_tunnels(*this);
}

asio::awaitable<void> control_session::serve_mux(std::unique_ptr<net::tls_stream> conn,
                                                 std::string initial, std::string peer) {
  auto self = shared_from_this();
  const std::size_t keep = muxes_granted_ ? proto::max_mux_connections : 1;
  while (muxes_.size() >= keep) {
    // Its streams end with it; the client opens it again if it still wants it.
    close_there(muxes_.front());
    muxes_.erase(muxes_.begin());
  }
  // The shard with the fewest of the client's connections, the client's
  // own first: each of its connections' bytes on a thread of its own.
  const std::size_t shards = server_.shard_count();
  std::vector<std::size_t> held(shards, 0);
  for (const auto& m : muxes_) {
    ++held[m.shard];
  }
  std::size_t shard = first_shard_ % shards;
  for (std::size_t k = 1; k < shards; ++k) {
    const std::size_t candidate = (first_shard_ + k) % shards;
    if (held[candidate] < held[shard]) {
      shard = candidate;
    }
  }
  mux_link link{nullptr, shard, server_.shard_executor(shard)};
  if (shard != 0) {
    net::move_to(*conn, link.executor);
  }
  mux::options options;
  options.stream_windows = stream_windows_;
  link.session = std::make_shared<mux::session>(std::move(conn), mux::session::role::server,
                                                std::move(initial), options);
  muxes_.push_back(link);
  log::info("multiplexed connection up", {{"client", client_id_},
                                          {"peer", peer},
                                          {"connections", std::to_string(muxes_.size())},
                                          {"thread", std::to_string(shard)}});
  if (shard == 0) {
    co_await link.session->run();
  } else {
    co_await asio::co_spawn(link.executor, link.session->run(), net::on_other_shard());
  }
  const auto same = [&link](const mux_link& m) { return m.session == link.session; };
  const bool ours = std::erase_if(muxes_, same) > 0;
  if (ours && !closed_) {
    // A client that stops closes its connections at once, and this one's
    // end may be seen before the control connection's: only a connection
    // lost while the client stays is worth a warning.
    co_await closing_.wait_until(std::chrono::steady_clock::now() + lost_mux_grace);
  }
  if (ours && !closed_) {
    if (muxes_.empty()) {
      log::warn("multiplexed connection lost; using proxy connections", {{"client", client_id_}});
    } else {
      log::warn(
          "multiplexed connection lost",
          {{"client", client_id_}, {"peer", peer}, {"connections", std::to_string(muxes_.size())}});
    }
  }
}

mux_link control_session::mux(std::optional<std::size_t> on_shard) {
  constexpr std::size_t any_shard = std::numeric_limits<std::size_t>::max();
  std::size_t only = on_shard.value_or(any_shard);
  if (only != any_shard) {
    const bool there = std::any_of(muxes_.begin(), muxes_.end(), [&](const mux_link& m) {
      return m.shard == only && !m.session->closed();
    });
    if (!there) {
      only = any_shard;
    }
  }
  mux_link best;
  std::size_t best_streams = 0;
  const std::size_t n = muxes_.size();
  for (std::size_t k = 0; k < n; ++k) {
    const mux_link& m = muxes_[(next_mux_ + k) % n];
    if (m.session->closed() || (only != any_shard && m.shard != only)) {
      continue;
    }
    // Read from this thread while the connection's own changes it: a hint.
    const std::size_t streams = m.session->stream_count();
    if (!best || streams < best_streams) {
      best = m;
      best_streams = streams;
    }
  }
  ++next_mux_;
  return best;
}

asio::awaitable<void> control_session::read_loop() {
  for (;;) {
    auto [ec, msg] = co_await reader_.read(*stream_);
    if (ec) {
      if (ec == asio::ssl::error::stream_truncated && !closed_) {
        // How a porthole client that stops (or a killed one) closes: the
        // TCP connection ends without a TLS close_notify.
        log::info("client closed its control connection",
                  {{"client", client_id_}, {"peer", peer_}});
      } else if (ec != asio::error::eof && ec != asio::error::operation_aborted && !closed_) {
        log::warn("control connection ended",
                  {{"client", client_id_}, {"peer", peer_}, {"error", ec.message()}});
      }
      co_return;
    }
    last_heard_ = std::chrono::steady_clock::now();
    ++server_.counters().messages_in[proto::type_name(msg)];
    if (std::holds_alternative<proto::ping>(msg)) {
      send(proto::pong{});
    } else if (auto* req = std::get_if<proto::req_tunnel>(&msg)) {
      for (proto::new_tunnel& reply : co_await server_.open_tunnels(shared_from_this(), *req)) {
        // ngrokd leaves ReqId empty in a refusal; naming the request lets a
        // client with several tunnels tell which one was refused.
        reply.req_id = req->req_id;
        if (!reply.error.empty()) {
          server_.counters().count(error_kind::tunnel_refused);
          // The client stays connected: a refused request costs it nothing
          // else, and the log shows a flood of them without being one.
          if (auto skipped = refusal_log_.admit()) {
            log::info("ReqTunnel refused", {{"client", client_id_},
                                            {"peer", peer_},
                                            {"reason", reply.error},
                                            {"suppressed", log::if_nonzero(*skipped)}});
          }
        }
        send(reply);
      }
    } else if (auto* close = std::get_if<proto::close_tunnel>(&msg)) {
      server_.close_tunnel(*this, close->url);
    } else if (std::holds_alternative<proto::promote>(msg) && standby_) {
      const bool promoted = co_await server_.promote(shared_from_this());
      if (!promoted) {
        co_return;
      }
    } else if (std::holds_alternative<proto::pong>(msg)) {
      // A client may answer our silence with Pong; nothing to do.
    } else {
      log::warn("unexpected message on the control connection; closing it",
                {{"client", client_id_}, {"peer", peer_}, {"type", proto::type_name(msg)}});
      co_return;
    }
  }
}

asio::awaitable<void> control_session::write_loop() {
  std::string batch;
  while (!closed_) {
    if (outbox_.empty()) {
      co_await outbox_ready_.wait_until(std::chrono::steady_clock::time_point::max());
      continue;
    }
    batch.clear();
    while (!outbox_.empty() &&
           (batch.empty() || batch.size() + outbox_.front().size() <= max_batch)) {
      batch += outbox_.front();
      outbox_.pop_front();
    }
    auto [ec, n] = co_await asio::async_write(*stream_, asio::buffer(batch), net::use_nothrow);
    if (ec) {
      co_return;
    }
  }
}

// Drops a client that stopped sending Ping, and keeps the pool fresh.
asio::awaitable<void> control_session::heartbeat_watch() {
  const auto ping_timeout = server_.config().ping_timeout;
  const auto tick =
      std::min<std::chrono::steady_clock::duration>(std::chrono::seconds(5), ping_timeout / 3);
  while (!closed_) {
    co_await closing_.wait_until(std::chrono::steady_clock::now() + tick);
    if (closed_) {
      co_return;
    }
    if (std::chrono::steady_clock::now() - last_heard_ > ping_timeout) {
      server_.counters().count(error_kind::heartbeat_timeout);
      log::warn("no heartbeat in time; closing the client's control connection",
                {{"client", client_id_}, {"timeout", seconds_text(ping_timeout)}});
      co_return;
    }
    if (const std::size_t idle = pool_.expire_idle(); idle > 0) {
      log::debug("closed unused proxy connections; asking for fresh ones",
                 {{"client", client_id_},
                  {"closed", idle},
                  {"idle_timeout", seconds_text(server_.config().pool_idle_timeout)}});
    }
  }
}

std::optional<public_conn_slot> control_session::admit_public(std::string_view public_peer,
                                                              std::string_view url) {
  const std::size_t limit = server_.config().max_conns_per_client;
  if (limit != 0 && *public_conns_ >= limit) {
    server_.counters().count(error_kind::limit);
    if (auto skipped = conn_limit_log_.admit()) {
      log::warn("public connection refused: the client has its limit open",
                {{"url", url},
                 {"peer", public_peer},
                 {"client", client_id_},
                 {"open", *public_conns_},
                 {"flag", "--max-conns-per-client"},
                 {"suppressed", log::if_nonzero(*skipped)}});
    }
    return std::nullopt;
  }
  if (!account_) {
    return public_conn_slot(public_conns_);
  }
  if (auto token_count = account_->admit_conn()) {
    return public_conn_slot(public_conns_, std::move(token_count));
  }
  server_.counters().count(error_kind::limit);
  if (auto skipped = account_->conn_limit_log.admit()) {
    log::warn(
        "public connection refused: the token's clients have its limit open",
        {{"url", url},
         {"peer", public_peer},
         {"token", account_->who().label},
         {"open", account_->conns()},
         {"flag", account_->who().own_conns ? "its own --max-conns" : "--max-conns-per-token"},
         {"suppressed", log::if_nonzero(*skipped)}});
  }
  return std::nullopt;
}

std::optional<public_conn_slot> control_session::try_admit_public() {
  const std::size_t limit = server_.config().max_conns_per_client;
  if (limit != 0 && *public_conns_ >= limit) {
    return std::nullopt;
  }
  if (!account_) {
    return public_conn_slot(public_conns_);
  }
  if (auto token_count = account_->admit_conn()) {
    return public_conn_slot(public_conns_, std::move(token_count));
  }
  return std::nullopt;
}

metrics& control_session::counters() {
  return server_.counters();
}

std::shared_ptr<metrics> control_session::shard_counters(std::size_t i) {
  return server_.shard_counters(i);
}

asio::awaitable<std::unique_ptr<net::channel>> start_proxy(
    std::shared_ptr<tunnel> t, std::string client_addr, std::string first_bytes,
    std::chrono::steady_clock::time_point deadline, stream_extras extras) {
  {
    auto session = t->session.lock();
    if (!session || session->closed()) {
      co_return nullptr;
    }
    // Here (the main loop): this loop's own connection if the client has one.
    if (mux_link via = session->mux(0)) {
      auto counters = session->shard_counters(via.shard);
      if (via.shard == 0) {
        // (Named first: temporaries in a co_await expression trip g++ 12.)
        auto opening = open_stream(std::move(via), t->url, std::move(client_addr),
                                   std::move(first_bytes), std::move(counters),
                                   std::move(extras));
        co_return co_await std::move(opening);
      }
      // A connection that stays here while its stream is on another thread.
      auto opening = asio::co_spawn(via.executor,
                                    open_stream(via, t->url, std::move(client_addr),
                                                std::move(first_bytes), std::move(counters),
                                                std::move(extras)),
                                    net::on_other_shard());
      std::unique_ptr<net::channel> stream = co_await std::move(opening);
      if (!stream) {
        co_return nullptr;
      }
      co_return std::make_unique<net::shard_channel>(via.executor, std::move(stream));
    }
  }
  const std::string start =
      proto::encode_framed(proto::start_proxy{t->url, std::move(client_addr)}) + first_bytes;
  for (bool first_try = true;; first_try = false) {
    auto session = t->session.lock();
    if (!session || session->closed()) {
      co_return nullptr;
    }
    if (first_try) {
      ++(session->pool().ready() > 0 ? session->counters().pool_hits
                                     : session->counters().pool_misses);
    }
    auto conn = co_await session->pool().take(deadline);
    if (!conn) {
      co_return nullptr;
    }
    auto [ec, n] = co_await asio::async_write(*conn, asio::buffer(start), net::use_nothrow);
    if (!ec) {
      ++session->counters().messages_out["StartProxy"];
      co_return std::make_unique<net::tls_channel>(std::move(conn));
    }
    log::debug("pooled proxy connection was stale; taking another",
               {{"url", t->url}, {"error", ec.message()}});
    net::close_stream(*conn);
  }
}

asio::awaitable<std::unique_ptr<net::channel>> open_stream(mux_link via, std::string url,
                                                           std::string client_addr,
                                                           std::string first_bytes,
                                                           std::shared_ptr<metrics> counters,
                                                           stream_extras extras) {
  if (via.session->closed()) {
    co_return nullptr;
  }
  ++counters->pool_hits;
  ++counters->messages_out["StartProxy"];  // in the stream's OPEN frame
  // A stream: no round trip, no handshake, the first bytes right behind OPEN.
  std::unique_ptr<net::channel> stream =
      via.session->open(
          proto::start_proxy{std::move(url), std::move(client_addr), std::move(extras.proto)},
          extras.window);
  if (!first_bytes.empty()) {
    const net::error_code ec = co_await stream->write(asio::buffer(first_bytes));
    if (ec) {
      co_return nullptr;
    }
  }
  co_return stream;
}

}  // namespace porthole::server
