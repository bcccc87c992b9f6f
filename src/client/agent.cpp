#include "client/agent.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/utsname.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <deque>
#include <set>

#include "client/local_h2.h"
#include "client/local_http.h"
#include "http/forwarding.h"
#include "inspect/http_capture.h"
#include "mux/session.h"
#include "net/address.h"
#include "net/frame_io.h"
#include "net/relay.h"
#include "net/shards.h"
#include "net/spawn.h"
#include "net/tls.h"

namespace porthole::client {

namespace asio = net::asio;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

namespace {

// The most multiplexed connections a client holds unless --mux-conns says.
constexpr std::size_t default_mux_connections = 4;

std::string random_req_id() {
  unsigned char raw[8];
  RAND_bytes(raw, sizeof raw);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex += digits[c >> 4];
    hex += digits[c & 0xf];
  }
  return hex;
}

// The names Go uses, as the ngrok 1.7 client reports them.
std::string go_arch() {
  utsname u{};
  uname(&u);
  const std::string m = u.machine;
  if (m == "x86_64") {
    return "amd64";
  }
  if (m == "aarch64") {
    return "arm64";
  }
  if (m.starts_with("arm")) {
    return "arm";
  }
  return m;
}

// The SSL extra-data slot that points at the session kept for the shard
// the connection is made on.
int session_slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool is_verify_failure(const net::error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() &&
         ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED;
}

// forward_http's view of one proxied HTTP connection: what it framed (or,
// relayed as bytes, its bytes) feeds an http_capture, whose exchanges go to
// `sink` (which must never block).
class capture_tap final : public http_observer {
 public:
  capture_tap(inspect::http_capture_options options, std::function<void(inspect::exchange)> sink)
      : capture_(std::move(options), std::move(sink)) {}
  ~capture_tap() override { capture_.on_close(); }
  capture_tap(const capture_tap&) = delete;
  capture_tap& operator=(const capture_tap&) = delete;

  void to_near(std::string_view bytes) noexcept override { capture_.on_request_bytes(bytes); }
  void to_tunnel(std::string_view bytes) noexcept override { capture_.on_response_bytes(bytes); }
  void request_head(const http::request_head& head) noexcept override {
    capture_.framed_request_head(head);
  }
  void request_body(std::string_view bytes) noexcept override {
    capture_.framed_request_body(bytes);
  }
  void request_end() noexcept override { capture_.framed_request_end(); }
  void response_head(const http::response_head& head) noexcept override {
    capture_.framed_response_head(head);
  }
  void response_body(std::string_view bytes) noexcept override {
    capture_.framed_response_body(bytes);
  }
  void response_end() noexcept override { capture_.framed_response_end(); }
  void lost_track(std::string_view why) noexcept override { capture_.abandon(why); }

 private:
  inspect::http_capture capture_;
};

// Tells the observer, if any, that a public connection is open while it
// lives; from any shard, through `tell` (agent::tell_observer).
class connection_count {
 public:
  using teller = std::function<void(std::function<void(agent_observer&)>)>;
  explicit connection_count(teller tell) : tell_(std::move(tell)) {
    tell_([](agent_observer& o) { o.connection_opened(); });
  }
  ~connection_count() {
    tell_([](agent_observer& o) { o.connection_closed(); });
  }
  connection_count(const connection_count&) = delete;
  connection_count& operator=(const connection_count&) = delete;

 private:
  teller tell_;
};

// What the observer is shown of an exchange: all but the bodies' bytes.
inspect::exchange without_bodies(const inspect::exchange& e) {
  inspect::exchange seen;
  seen.id = e.id;
  seen.tunnel_name = e.tunnel_name;
  seen.public_url = e.public_url;
  seen.remote_addr = e.remote_addr;
  seen.start = e.start;
  seen.duration = e.duration;
  const auto sized = [](const inspect::captured_body& b) {
    return inspect::captured_body{{}, b.size, b.size > 0};
  };
  seen.request = {e.request.method, e.request.target, e.request.version, e.request.headers,
                  sized(e.request.body)};
  if (const auto& r = e.response) {
    seen.response =
        inspect::captured_response{r->status, r->reason, r->version, r->headers, sized(r->body)};
  }
  seen.replay_of = e.replay_of;
  seen.websocket = e.websocket;
  seen.error = e.error;
  return seen;
}

}  // namespace

std::string_view to_string(transport_kind t) {
  switch (t) {
    case transport_kind::mux:
      return "mux";
    case transport_kind::pool:
      return "pool";
    case transport_kind::ngrok:
      break;
  }
  return "ngrok";
}

/// One live control connection.
struct agent::session {
  net::host_port server;  ///< the node it is to, as dialled
  /// Where its multiplexed and proxy connections go: the node's own address
  /// when a cluster node told it (the address dialled may be a load
  /// balancer's, which could send them to another node), else `server`.
  net::host_port node;
  bool node_failed = false;  ///< the node's own address could not be reached: use `server`
  std::string tls_name;      ///< what the server's certificate must name
  std::unique_ptr<net::tls_stream> stream;
  net::frame_reader reader;
  clock::time_point last_pong = clock::now();
  struct asked {
    std::string key;          ///< tunnel_spec::key() of the tunnel asked for
    std::size_t unanswered;   ///< NewTunnels still due: one per protocol ("http+https": 2)
    bool remembered = false;  ///< asks again for the name or port the server chose before
  };
  std::map<std::string, asked> by_req_id;  ///< ReqId -> what it asked for
  std::set<std::string> first_requests;    ///< ReqIds sent on connect and not yet answered
  std::deque<std::string> req_order;       ///< ReqIds in the order sent
  std::size_t up = 0;                      ///< tunnels the server granted on this connection
  bool was_up = false;                     ///< a tunnel came up on this connection
  std::optional<agent_result> fatal;       ///< why the client must stop, if it must
  bool mux_granted = false;                ///< the server speaks the "mux" extension
  bool muxes_granted = false;              ///< ... and "muxes": several mux connections
  bool close_granted = false;              ///< the server understands CloseTunnel
  transport_kind transport = transport_kind::ngrok;
  /// The multiplexed connections, one slot each (null while one is down).
  std::vector<std::shared_ptr<mux::session>> muxes;
  std::string outbox;  ///< frames for the server, not yet written
  net::event outbox_ready;
  bool leaving = false;            ///< stopping: end once the outbox (CloseTunnels) is written
  std::string version;             ///< the server's, as it said in AuthResp
  std::vector<std::string> nodes;  ///< the cluster's other nodes, as this one told
  bool standby_granted = false;    ///< the server takes a standby connection on another node
  bool standby = false;            ///< stands by for the tunnels (until promoted)
  bool ready = false;              ///< standby: every tunnel stands by
  bool over = false;               ///< the connection ended
  net::event ended;

  std::string name() const {
    return server.host.find(':') == std::string::npos ? server.host + ":" + server.port
                                                      : "[" + server.host + "]:" + server.port;
  }
};

agent::agent(asio::io_context& ioc, client_config cfg, std::vector<asio::any_io_executor> shards)
    : ioc_(ioc),
      cfg_(std::move(cfg)),
      tls_(net::make_client_tls(cfg_.trust_ca)),
      client_id_(cfg_.client_id),
      published_tunnels_(std::make_shared<const tunnel_map>()),
      shards_(std::move(shards)) {
  if (shards_.empty()) {
    shards_.push_back(ioc.get_executor());
  }
  tls_sessions_.resize(shards_.size());
  for (const auto& ex : shards_) {
    local_pools_.push_back(std::make_shared<local_pool>(
        ex, local_pool_limits{cfg_.local_idle_conns, cfg_.local_idle_timeout}));
  }
  SSL_CTX* ctx = tls_.native_handle();
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &agent::on_new_session);
  // A comma list names several servers (the nodes of a cluster): the client
  // uses one at a time and moves to the next when it cannot reach it.
  std::string_view rest = cfg_.server_addr;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view one = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!one.empty() && one.front() == ' ') {
      one.remove_prefix(1);
    }
    while (!one.empty() && one.back() == ' ') {
      one.remove_suffix(1);
    }
    if (!one.empty()) {
      servers_.push_back(net::split_host_port(one, "443"));
    }
  }
  if (servers_.empty()) {
    servers_.push_back(net::split_host_port(cfg_.server_addr, "443"));
  }
  given_servers_ = servers_.size();
  server_host_ = servers_.front().host;
  server_port_ = servers_.front().port;
}

std::string agent::learned_tls_name(const net::host_port& to, const std::string& given) const {
  std::string bare = given;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  net::error_code ec;
  asio::ip::make_address(bare, ec);
  return ec ? given : to.host;
}

void agent::next_server() {
  server_index_ = (server_index_ + 1) % servers_.size();
  server_host_ = servers_[server_index_].host;
  server_port_ = servers_[server_index_].port;
}

void agent::learn_servers(const std::vector<std::string>& nodes) {
  constexpr std::size_t max_servers = 64;
  for (const std::string& addr : nodes) {
    net::host_port hp;
    try {
      hp = net::split_host_port(addr, "443");
    } catch (const std::exception&) {
      continue;  // a node's word is advice: a bad address is skipped
    }
    const bool known = std::any_of(servers_.begin(), servers_.end(), [&](const auto& s) {
      return s.host == hp.host && s.port == hp.port;
    });
    if (!known && !hp.host.empty() && servers_.size() < max_servers) {
      servers_.push_back(std::move(hp));
    }
  }
}

agent::~agent() = default;

void agent::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  // The URLs go back first where the server takes them back (otherwise it
  // holds them for a reconnect that will not come, and a client started again
  // at once is told they are taken).
  if (current_ != nullptr && current_->close_granted && !url_to_tunnel_.empty()) {
    for (const auto& [url, spec] : url_to_tunnel_) {
      send(*current_, proto::close_tunnel{url});
    }
    current_->leaving = true;
    drop_standby();
    net::spawn(ioc_.get_executor(), leave_by(clock::now() + cfg_.leave_timeout), "leaving");
    return;
  }
  end_now();
}

void agent::end_now() {
  stopping_.notify();
  standby_wanted_.notify();
  if (current_ != nullptr) {
    net::close_stream(*current_->stream);
  }
  drop_standby();
}

void agent::drop_standby() {
  if (standby_ != nullptr) {
    net::close_stream(*standby_->stream);
    standby_.reset();
  }
}

asio::awaitable<void> agent::leave_by(clock::time_point deadline) {
  asio::steady_timer timer(ioc_, deadline);
  co_await timer.async_wait(net::use_nothrow);
  if (current_ != nullptr) {
    spdlog::warn("the server took no CloseTunnel within {}s; closing", cfg_.leave_timeout.count());
    end_now();
  }
}

asio::awaitable<agent_result> agent::run() {
  if (cfg_.standby && cfg_.mux) {
    net::spawn(ioc_.get_executor(), keep_standby(), "standby connection");
  }
  auto delay = cfg_.reconnect_min;
  for (;;) {
    bool was_up = false;
    std::optional<agent_result> fatal;
    if (standby_ != nullptr && standby_->ready && !standby_->over && !stopped_) {
      // The other node has every tunnel standing by: no reconnect, no gap.
      std::shared_ptr<session> next = std::exchange(standby_, nullptr);
      fatal = co_await serve_promoted(std::move(next), was_up);
    } else {
      drop_standby();  // not ready: the main connection starts afresh
      if (observer_ != nullptr) {
        observer_->connecting();
      }
      fatal = co_await serve_once(was_up);
    }
    if (fatal) {
      co_return *fatal;
    }
    if (stopped_) {
      co_return agent_result{};
    }
    if (was_up) {
      // Only a connection that served counts as a success: one the server
      // accepted and then refused every tunnel on (a cluster node without
      // etcd) must not make the client go round the nodes without a pause.
      delay = cfg_.reconnect_min;
      failed_in_a_row_ = 0;
    }
    if (servers_.size() > 1) {
      // Another node at once, unless every one failed since the last success.
      ++failed_in_a_row_;
      next_server();
      if (failed_in_a_row_ < servers_.size()) {
        spdlog::info("trying server {}:{}", server_host_, server_port_);
        continue;
      }
      failed_in_a_row_ = 0;
    } else if (was_up) {
      // A connection that served is tried again at once (a node behind the
      // address stopped, and another one takes it); backoff after that.
      spdlog::info("reconnecting to server {}:{}", server_host_, server_port_);
      continue;
    }
    spdlog::info("reconnecting in {}s", delay.count());
    if (observer_ != nullptr) {
      observer_->reconnecting(clock::now() + delay);
    }
    co_await stopping_.wait_until(clock::now() + delay);
    if (stopped_) {
      co_return agent_result{};
    }
    delay = std::min(delay * 2, cfg_.reconnect_max);
  }
}

// Says why when it fails, except for a certificate that does not verify:
// that ends the client, and the caller says so.
asio::awaitable<std::tuple<net::error_code, std::unique_ptr<net::tls_stream>>> agent::connect(
    net::host_port to, std::string tls_name, std::size_t shard) {
  const std::string server = to.host + ":" + to.port;
  auto [ec, sock, failure] = co_await net::dial(to.host, to.port, cfg_.proxy, cfg_.dial_timeout);
  if (ec) {
    if (!stopped_) {
      spdlog::warn("cannot reach server {}: {}", server, failure);
    }
    co_return std::tuple{ec, nullptr};
  }
  auto stream = std::make_unique<net::tls_stream>(std::move(sock), tls_);
  net::verify_host(stream->native_handle(), tls_name);
  // Not SSL_set_app_data: Asio keeps its verify callback in that slot.
  std::shared_ptr<SSL_SESSION>& kept = tls_sessions_[shard % tls_sessions_.size()];
  SSL_set_ex_data(stream->native_handle(), session_slot_index(), &kept);
  if (kept) {
    SSL_set_session(stream->native_handle(), kept.get());
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, cfg_.dial_timeout);
  auto result =
      co_await (stream->async_handshake(asio::ssl::stream_base::client, net::use_nothrow) ||
                timer.async_wait(net::use_nothrow));
  if (result.index() == 1) {
    if (!stopped_) {
      spdlog::warn("cannot reach server {}: no TLS handshake within {}s", server,
                   cfg_.dial_timeout.count());
    }
    co_return std::tuple{net::error_code(asio::error::timed_out), nullptr};
  }
  if (auto [hec] = std::get<0>(result); hec) {
    if (!stopped_ && !is_verify_failure(hec)) {
      spdlog::warn("cannot reach server {}: {}", server, hec.message());
    }
    co_return std::tuple{hec, nullptr};
  }
  if (SSL_session_reused(stream->native_handle()) != 0) {
    spdlog::trace("TLS session resumed");
  }
  co_return std::tuple{net::error_code{}, std::move(stream)};
}

// A copy is kept: a connection that ends without close_notify marks its own
// session object as not resumable.
int agent::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* kept =
      static_cast<std::shared_ptr<SSL_SESSION>*>(SSL_get_ex_data(ssl, session_slot_index()));
  if (kept == nullptr) {
    return 0;
  }
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) {
    kept->reset(copy, &SSL_SESSION_free);
  }
  return 0;  // OpenSSL keeps ownership of `session`
}

asio::awaitable<std::tuple<std::shared_ptr<agent::session>, std::optional<agent_result>>>
agent::open_session(net::host_port to, std::string tls_name, bool standby) {
  auto s = std::make_shared<session>();
  s->tls_name = std::move(tls_name);
  s->server = std::move(to);
  s->node = s->server;
  s->standby = standby;
  const std::string server = s->name();
  net::host_port server_addr = s->server;
  std::string tls_name_copy = s->tls_name;
  auto [ec, stream] = co_await connect(std::move(server_addr), std::move(tls_name_copy));
  if (ec) {
    if (is_verify_failure(ec) && !standby) {
      co_return std::tuple{nullptr, agent_result{1, "the TLS certificate of " + server +
                                                        " is not trusted (" + ec.message() +
                                                        "); give the server's CA certificate "
                                                        "with --trust-ca FILE"}};
    }
    if (is_verify_failure(ec)) {
      spdlog::warn("cannot stand by on server {}: its TLS certificate is not trusted ({})", server,
                   ec.message());
    }
    co_return std::tuple{nullptr, std::nullopt};  // connect() said why otherwise
  }
  s->stream = std::move(stream);

  proto::auth auth;
  auth.user = cfg_.authtoken;
  auth.os = "linux";
  auth.arch = go_arch();
  auth.client_id = client_id_;
  auth.ext = proto::extensions{PORTHOLE_VERSION, standby ? 0 : cfg_.pool_size, {}};
  if (cfg_.mux) {
    auth.ext->features.emplace_back(proto::feature_mux);
  }
  if (cfg_.mux && mux_count() > 1) {
    auth.ext->features.emplace_back(proto::feature_muxes);
  }
  if (cfg_.mux) {
    auth.ext->features.emplace_back(proto::feature_stream_windows);
  }
  if (cfg_.mux && cfg_.standby) {
    auth.ext->features.emplace_back(proto::feature_standby);
  }
  auth.ext->standby = standby;
  std::string auth_frame = proto::encode_framed(auth);
  const net::error_code auth_ec = co_await net::write_message(*s->stream, std::move(auth_frame));
  if (auth_ec) {
    spdlog::warn("lost connection to server {}: {}", server, auth_ec.message());
    co_return std::tuple{nullptr, std::nullopt};
  }
  asio::steady_timer timer(ioc_, cfg_.auth_timeout);
  auto first = co_await (s->reader.read(*s->stream) || timer.async_wait(net::use_nothrow));
  if (first.index() == 1) {
    spdlog::warn("server {} did not answer Auth within {}s", server, cfg_.auth_timeout.count());
    co_return std::tuple{nullptr, std::nullopt};
  }
  auto [rec, msg] = std::get<0>(std::move(first));
  auto* resp = std::get_if<proto::auth_resp>(&msg);
  if (rec || !resp) {
    spdlog::warn(
        "lost connection to server {}: {}", server,
        rec ? rec.message() : "expected AuthResp, got " + std::string(proto::type_name(msg)));
    co_return std::tuple{nullptr, std::nullopt};
  }
  if (!resp->error.empty()) {
    if (standby) {
      spdlog::warn("server {} takes no standby connection: {}", server, resp->error);
      net::close_stream(*s->stream);
      co_return std::tuple{nullptr, std::nullopt};
    }
    co_return std::tuple{nullptr, agent_result{1, "the server refused the client: " + resp->error}};
  }
  if (resp->ext) {
    const auto& f = resp->ext->features;
    const auto has = [&](std::string_view name) {
      return std::find(f.begin(), f.end(), name) != f.end();
    };
    s->mux_granted = cfg_.mux && has(proto::feature_mux);
    s->muxes_granted = s->mux_granted && mux_count() > 1 && has(proto::feature_muxes);
    s->close_granted = has(proto::feature_close_tunnel);
    s->standby_granted = s->mux_granted && cfg_.standby && has(proto::feature_standby);
    s->nodes = resp->ext->nodes;
    s->version = resp->ext->version;
    if (!resp->ext->node.empty()) {
      try {
        s->node = net::split_host_port(resp->ext->node, "443");
      } catch (const std::exception&) {
        s->node = {};  // a node's word is advice
      }
    }
  } else {
    s->version = resp->mm_version;
  }
  if (standby && (!s->mux_granted || resp->client_id != client_id_)) {
    net::close_stream(*s->stream);
    co_return std::tuple{nullptr, std::nullopt};
  }
  // What the line below says: multiplexed, porthole's base protocol, or ngrok 1.x's.
  s->transport = !resp->ext       ? transport_kind::ngrok
                 : s->mux_granted ? transport_kind::mux
                                  : transport_kind::pool;
  if (!standby) {
    client_id_ = resp->client_id;
  }
  co_return std::tuple{std::move(s), std::nullopt};
}

asio::awaitable<std::optional<agent_result>> agent::serve_once(bool& was_up) {
  // (A braced temporary inside a co_await expression trips g++ 12.)
  net::host_port to{server_host_, server_port_};
  // A node learned from another node is checked against the name the user
  // gave: the nodes of a cluster present the same certificate.
  std::string tls_name = server_index_ < given_servers_
                             ? server_host_
                             : learned_tls_name(servers_[server_index_], servers_.front().host);
  auto [s, fatal] = co_await open_session(std::move(to), std::move(tls_name), false);
  if (!s) {
    co_return fatal;  // or nothing: run() tries again after its backoff
  }
  if (on_client_id_) {
    on_client_id_(client_id_);
  }
  learn_servers(s->nodes);
  ++connections_;
  spdlog::info("connected to server {} as client {}{}", s->name(), client_id_,
               s->transport == transport_kind::ngrok ? " (ngrok 1.x protocol)"
               : s->mux_granted                      ? " (porthole " + s->version + ", multiplexed)"
                                                     : " (porthole " + s->version + ")");

  if (observer_ != nullptr) {
    observer_->online(s->version);
  }

  // Ask for every tunnel at once, as the protocol allows. The URLs are
  // announced again (the same ones, unless a grace period ran out).
  key_to_url_.clear();
  announce_tunnels();
  for (const tunnel_spec& t : cfg_.tunnels) {
    request_tunnel(*s, t);
  }
  for (const auto& [req_id, a] : s->by_req_id) {
    s->first_requests.insert(req_id);
  }

  current_ = s.get();
  tell_if_settled();  // nothing asked for (a reload removed every tunnel)
  co_await serve_session(s);
  current_ = nullptr;
  was_up = s->was_up;
  co_return s->fatal;
}

asio::awaitable<std::optional<agent_result>> agent::serve_promoted(std::shared_ptr<session> s,
                                                                   bool& was_up) {
  spdlog::info("the standby connection to server {} takes over; the tunnels keep their URLs",
               s->name());
  s->standby = false;
  s->was_up = true;
  s->up = key_to_url_.size();
  send(*s, proto::promote{});
  server_host_ = s->server.host;
  server_port_ = s->server.port;
  failed_in_a_row_ = 0;
  learn_servers(s->nodes);
  ++connections_;
  if (observer_ != nullptr) {
    observer_->online(s->version);
  }
  current_ = s.get();
  tell_if_settled();
  standby_wanted_.notify();
  while (!s->over) {
    co_await s->ended.wait_until(clock::time_point::max());
  }
  current_ = nullptr;
  was_up = s->was_up;
  co_return s->fatal;
}

asio::awaitable<void> agent::serve_session(std::shared_ptr<session> s) {
  co_await (read_loop(*s) || write_loop(*s) || ping_loop(*s) || mux_loop(*s));
  for (std::size_t slot = 0; slot < s->muxes.size(); ++slot) {
    // Each on its own shard: a mux session is used there only.
    if (auto m = s->muxes[slot]) {
      net::spawn(shards_[slot % shards_.size()], drain(std::move(m)),
                 "draining a multiplexed connection");
    }
  }
  net::close_stream(*s->stream);
  s->over = true;
  s->ended.notify();
}

// A second control connection to another node of the cluster, while the
// main one's node offers it: it asks for the same tunnels, which that node
// serves too while they are this client's, and becomes the main connection
// at once (Promote) when the main one is lost.
asio::awaitable<void> agent::keep_standby() {
  std::size_t pick = 0;
  while (!stopped_) {
    co_await standby_wanted_.wait_until(clock::now() + std::chrono::seconds(1));
    session* main = current_;
    if (stopped_ || standby_ != nullptr || main == nullptr || main->standby ||
        !main->standby_granted || !main->by_req_id.empty() || key_to_url_.empty() ||
        main->nodes.empty()) {
      continue;
    }
    net::host_port to;
    try {
      to = net::split_host_port(main->nodes[pick++ % main->nodes.size()], "443");
    } catch (const std::exception&) {
      continue;
    }
    std::string tls_name = learned_tls_name(to, main->tls_name);
    auto [s, ignored] = co_await open_session(to, std::move(tls_name), true);
    if (s != nullptr && (stopped_ || current_ != main || standby_ != nullptr)) {
      net::close_stream(*s->stream);  // the main connection changed meanwhile
      continue;
    }
    if (s == nullptr) {
      co_await stopping_.wait_until(clock::now() + cfg_.reconnect_min);
      continue;
    }
    for (const tunnel_spec& t : cfg_.tunnels) {
      if (key_to_url_.contains(t.key())) {
        request_tunnel(*s, t);
      }
    }
    standby_ = s;
    net::spawn(ioc_.get_executor(), serve_session(s), "standby connection " + s->name());
    // Until it ends, or takes over (then another is opened for the new main one).
    while (!s->over && s->standby) {
      co_await s->ended.wait_until(clock::now() + std::chrono::milliseconds(200));
    }
    if (standby_ == s) {
      standby_.reset();
    }
    if (s->standby && !stopped_) {
      tell_if_settled();
      spdlog::info("standby connection to server {} ended", s->name());
      co_await stopping_.wait_until(clock::now() + cfg_.reconnect_min);
    }
  }
}

void agent::standby_answer(session& s, const proto::new_tunnel& nt) {
  auto asked = s.by_req_id.find(nt.req_id);
  if (asked == s.by_req_id.end()) {
    return;
  }
  if (!nt.error.empty()) {
    spdlog::warn("server {} cannot stand by for tunnel {}: {}", s.name(), nt.url, nt.error);
    net::close_stream(*s.stream);
    return;
  }
  if (--asked->second.unanswered == 0) {
    s.by_req_id.erase(asked);
  }
  if (s.by_req_id.empty() && !s.ready) {
    s.ready = true;
    spdlog::info(
        "standing by on server {}: it serves the tunnels too, and takes over if server "
        "{}:{} goes",
        s.name(), server_host_, server_port_);
    tell_if_settled();
  }
}

// The control connection is gone but public connections are still being
// answered over the multiplexed one (a node that shuts down lets them
// finish): it is closed once they are done, within a bound.
asio::awaitable<void> agent::drain(std::shared_ptr<mux::session> m) {
  const auto give_up = clock::now() + std::chrono::seconds(30);
  // Kept a moment even without a stream: the node may have opened one just
  // as its control connection ended (its OPEN still on the way), and closes
  // the connection itself when it is done.
  const auto linger = clock::now() + std::chrono::seconds(2);
  asio::steady_timer tick(co_await asio::this_coro::executor);
  while (!stopped_ && !m->closed() && (m->stream_count() > 0 || clock::now() < linger) &&
         clock::now() < give_up) {
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(net::use_nothrow);
  }
  m->close();
}

asio::awaitable<void> agent::read_loop(session& s) {
  const std::string server = s.name();
  for (;;) {
    auto [ec, msg] = co_await s.reader.read(*s.stream);
    if (ec) {
      if (!stopped_) {
        spdlog::warn("lost connection to server {}: {}", server, ec.message());
      }
      co_return;
    }
    if (auto* nt = std::get_if<proto::new_tunnel>(&msg); nt != nullptr && s.standby) {
      standby_answer(s, *nt);
    } else if (nt != nullptr) {
      handle_new_tunnel(s, *nt);
      if (s.fatal) {
        co_return;
      }
      tell_if_settled();
    } else if (std::holds_alternative<proto::req_proxy>(msg)) {
      net::spawn(
          ioc_.get_executor(),
          proxy_connection(s.node_failed ? s.server : s.node,
                           s.node_failed ? s.tls_name : learned_tls_name(s.node, s.tls_name)),
          "proxy connection");
    } else if (std::holds_alternative<proto::pong>(msg)) {
      s.last_pong = clock::now();
    } else {
      spdlog::debug("ignoring {} from the server", proto::type_name(msg));
    }
  }
}

std::size_t agent::mux_count() const {
  // By default one per thread, up to default_mux_connections: each is a
  // connection the server counts against the client's address.
  const std::size_t n = cfg_.mux_connections != 0
                            ? cfg_.mux_connections
                            : std::min(shards_.size(), default_mux_connections);
  return std::min(n, proto::max_mux_connections);
}

// The multiplexed connections (one, or mux_count() with "muxes"), each kept
// up in its own loop while the control connection lives.
asio::awaitable<void> agent::mux_loop(session& s) {
  const std::size_t n = s.muxes_granted ? mux_count() : 1;
  s.muxes.assign(n, nullptr);
  if (n == 1) {
    co_await keep_mux(s, 0);
    co_return;
  }
  const auto executor = co_await asio::this_coro::executor;
  using op = decltype(asio::co_spawn(executor, keep_mux(s, 0), asio::deferred));
  std::vector<op> loops;
  for (std::size_t slot = 0; slot < n; ++slot) {
    loops.push_back(asio::co_spawn(executor, keep_mux(s, slot), asio::deferred));
  }
  // Cancelled together (the control connection ended): each loop ends as
  // the single one does.
  co_await asio::experimental::make_parallel_group(std::move(loops))
      .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
}

// One multiplexed connection, kept up while the control connection lives. If
// none can be had, the server falls back to asking for proxy connections.
// The loop runs on the agent's thread; the connection on its slot's shard.
asio::awaitable<void> agent::keep_mux(session& s, std::size_t slot) {
  const std::size_t shard = slot % shards_.size();
  while (s.mux_granted && !stopped_) {
    const bool direct =
        !s.node_failed && (s.node.host != s.server.host || s.node.port != s.server.port);
    // (Named: temporaries inside a co_await expression trip g++ 12.)
    net::host_port to = direct ? s.node : s.server;
    std::string tls_name = direct ? learned_tls_name(s.node, s.tls_name) : s.tls_name;
    auto opening = asio::co_spawn(shards_[shard],
                                  open_mux(shard, std::move(to), std::move(tls_name), client_id_),
                                  net::on_other_shard());
    auto [ec, m] = co_await std::move(opening);
    if (ec && direct) {
      // The node's own address is not reachable from here (or presents
      // something else): the address dialled for the control connection is.
      s.node_failed = true;
      auto again = asio::co_spawn(shards_[shard], open_mux(shard, s.server, s.tls_name, client_id_),
                                  net::on_other_shard());
      std::tie(ec, m) = co_await std::move(again);
    }
    const bool connect_said_why = ec && !is_verify_failure(ec);
    if (m) {
      s.muxes[slot] = m;
      spdlog::debug("multiplexed connection {} up", slot + 1);
      // Run on its own: when the control connection goes (its node is
      // shutting down), the streams in flight on it still finish.
      auto ended = std::make_shared<net::event>();
      auto over = std::make_shared<bool>(false);
      asio::co_spawn(shards_[shard], m->run(),
                     asio::bind_executor(ioc_.get_executor(), [ended, over](std::exception_ptr e) {
                       if (e) {
                         net::log_escaped(e, "multiplexed connection");
                       }
                       *over = true;
                       ended->notify();
                     }));
      while (!*over) {
        co_await ended->wait_until(clock::time_point::max());
      }
      s.muxes[slot].reset();
      if (stopped_) {
        co_return;
      }
      spdlog::warn("multiplexed connection lost; opening it again");
    } else if (!connect_said_why) {
      spdlog::warn("cannot open the multiplexed connection: {}", ec.message());
    }
    const bool stop = co_await stopping_.wait_until(clock::now() + cfg_.reconnect_min);
    if (stop) {
      co_return;
    }
  }
  co_await stopping_.wait_until(clock::time_point::max());
}

asio::awaitable<std::tuple<net::error_code, std::shared_ptr<mux::session>>> agent::open_mux(
    std::size_t shard, net::host_port to, std::string tls_name, std::string client_id) {
  auto [ec, conn] = co_await connect(std::move(to), std::move(tls_name), shard);
  if (!ec) {
    std::string reg = proto::encode_framed(proto::reg_mux{std::move(client_id)});
    ec = co_await net::write_message(*conn, std::move(reg));
  }
  if (ec) {
    co_return std::tuple{ec, nullptr};
  }
  auto m = std::make_shared<mux::session>(std::move(conn), mux::session::role::client);
  const auto executor = co_await asio::this_coro::executor;
  m->on_open = [this, executor, shard](std::unique_ptr<mux::stream> st, proto::start_proxy info) {
    net::spawn(executor, serve_stream(std::move(st), std::move(info), shard), "stream");
  };
  co_return std::tuple{net::error_code{}, std::move(m)};
}

asio::awaitable<void> agent::serve_stream(std::unique_ptr<mux::stream> st, proto::start_proxy info,
                                          std::size_t shard) {
  auto spec = find_tunnel(info.url);
  if (!spec) {
    spdlog::warn("server opened a stream for unknown tunnel {}; closing it", info.url);
    co_return;
  }
  co_await serve_proxied(*st, std::move(spec), std::move(info), shard);
}

void agent::tell_observer(std::function<void(agent_observer&)> tell) {
  if (observer_ == nullptr) {
    return;
  }
  if (ioc_.get_executor().running_in_this_thread()) {
    tell(*observer_);  // in order with what the agent's own thread tells it
    return;
  }
  asio::post(ioc_, [observer = observer_, tell = std::move(tell)] { tell(*observer); });
}

asio::awaitable<void> agent::serve_proxied(net::channel& tunnel,
                                           std::shared_ptr<const tunnel_spec> spec,
                                           proto::start_proxy info, std::size_t shard,
                                           std::string initial) {
  spdlog::debug("{}: connection from {}", info.url, info.client_addr);
  const connection_count counted(
      [this](std::function<void(agent_observer&)> tell) { tell_observer(std::move(tell)); });
  if (spec->is_http()) {
    co_await serve_http(tunnel, std::move(spec), std::move(info), shard, std::move(initial));
    co_return;
  }
  auto [dec, local, failure] =
      co_await net::dial(spec->local_host, spec->local_port, std::nullopt, cfg_.local_dial_timeout);
  if (dec) {
    spdlog::warn("{}: cannot reach the local service at {}: {}", info.url, spec->local_addr(),
                 failure);
    tunnel.close();
    co_return;
  }
  co_await net::relay(local, tunnel, std::move(initial), cfg_.tcp_idle_timeout, true);
}

asio::awaitable<void> agent::serve_http(net::channel& tunnel,
                                        std::shared_ptr<const tunnel_spec> spec,
                                        proto::start_proxy info, std::size_t shard,
                                        std::string initial) {
  local_http_target target{
      spec->local_host, spec->local_port, info.url,
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.local_dial_timeout),
      cfg_.tcp_idle_timeout};
  std::optional<capture_tap> tap;
  if (capture_ != nullptr || observer_ != nullptr) {
    inspect::http_capture_options options;
    options.tunnel_name = spec->name;
    options.public_url = info.url;
    options.remote_addr = info.client_addr;
    options.public_version = info.proto;
    options.body_limit = capture_ != nullptr ? capture_body_limit_ : 0;
    // By value: a connection may end after the agent (when the io_context
    // goes). The observer is told on the agent's thread, without the bodies.
    tap.emplace(std::move(options), [writer = capture_, observer = observer_,
                                     main = ioc_.get_executor()](inspect::exchange e) {
      if (observer != nullptr) {
        inspect::exchange seen = without_bodies(e);
        asio::post(main, [observer, seen = std::move(seen)] { observer->exchange_done(seen); });
      }
      if (writer != nullptr) {
        writer->submit(std::move(e));
      }
    });
  }
  http_observer* seen_by = tap ? &*tap : nullptr;
  local_http_totals done;
  if (spec->upstream == "http2") {
    auto forwarding = forward_h2(tunnel, std::move(target), std::move(initial), seen_by);
    done = co_await std::move(forwarding);
  } else {
    auto forwarding = forward_http(tunnel, local_pools_[shard % local_pools_.size()],
                                   std::move(target), std::move(initial), seen_by);
    done = co_await std::move(forwarding);
  }
  spdlog::debug(
      "{}: connection from {} ended: {} requests, {} on kept connections, {} local dials, "
      "{} sent again",
      info.url, info.client_addr, done.requests, done.reused, done.dials, done.retried);
}

void agent::capture_into(std::shared_ptr<inspect::capture_writer> writer, std::size_t body_limit) {
  capture_ = std::move(writer);
  capture_body_limit_ = body_limit;
}

asio::awaitable<void> agent::ping_loop(session& s) {
  // Pings go out every interval, however long each Pong took.
  auto next = clock::now() + cfg_.ping_interval;
  for (;;) {
    const bool stop = co_await stopping_.wait_until(next);
    if (stop) {
      co_return;
    }
    const auto sent = clock::now();
    next = sent + cfg_.ping_interval;
    send(s, proto::ping{});
    const bool stop_waiting =
        co_await stopping_.wait_until(sent + std::min(cfg_.pong_timeout, cfg_.ping_interval));
    if (stop_waiting) {
      co_return;
    }
    if (s.last_pong < sent) {
      spdlog::warn("no Pong from the server within {}s; the connection is dead",
                   cfg_.pong_timeout.count());
      co_return;
    }
  }
}

// Every frame for the server goes through here, so that frames written from
// different coroutines (pings, reloads, replies) never interleave.
void agent::send(session& s, const proto::message& m) {
  s.outbox += proto::encode_framed(m);
  s.outbox_ready.notify();
}

asio::awaitable<void> agent::write_loop(session& s) {
  const std::string server = s.name();
  std::string batch;
  for (;;) {
    if (s.outbox.empty()) {
      co_await s.outbox_ready.wait_until(clock::time_point::max());
      continue;
    }
    batch.clear();
    batch.swap(s.outbox);
    auto [ec, n] = co_await asio::async_write(*s.stream, asio::buffer(batch), net::use_nothrow);
    if (ec) {
      if (!stopped_) {
        spdlog::warn("lost connection to server {}: {}", server, ec.message());
      }
      co_return;
    }
    if (s.leaving && s.outbox.empty()) {
      spdlog::info("gave the tunnels' URLs back to the server");
      end_now();
      co_return;
    }
  }
}

std::string agent::request_tunnel(session& s, const tunnel_spec& t) {
  // A tunnel that named neither a port nor a name asks for what the server
  // chose last time, so its URL survives a reconnect, also to a server that
  // restarted and forgot it; if that is gone, it asks afresh (below).
  bool remembered = false;
  std::uint16_t port = t.remote_port;
  if (auto it = assigned_ports_.find(t.key()); port == 0 && it != assigned_ports_.end()) {
    port = it->second;
    remembered = true;
  }
  std::string subdomain = t.subdomain;
  if (auto it = assigned_subdomains_.find(t.key());
      t.is_http() && subdomain.empty() && t.hostname.empty() && it != assigned_subdomains_.end()) {
    subdomain = it->second;
    remembered = true;
  }
  proto::req_tunnel req{random_req_id(), t.protocol, t.hostname, subdomain, t.http_auth, port};
  const auto protocols =
      static_cast<std::size_t>(std::count(t.protocol.begin(), t.protocol.end(), '+')) + 1;
  s.by_req_id[req.req_id] = session::asked{t.key(), protocols, remembered};
  s.req_order.push_back(req.req_id);
  std::string id = req.req_id;
  send(s, std::move(req));
  return id;
}

void agent::handle_new_tunnel(session& s, const proto::new_tunnel& nt) {
  while (!s.req_order.empty() && !s.by_req_id.contains(s.req_order.front())) {
    s.req_order.pop_front();
  }
  // ngrokd sends a refusal without ReqId; it answers requests in order, so
  // the refusal is for the oldest one unanswered.
  const std::string req_id =
      nt.req_id.empty() && !s.req_order.empty() ? s.req_order.front() : nt.req_id;
  auto asked = s.by_req_id.find(req_id);
  if (asked == s.by_req_id.end()) {
    spdlog::warn("server sent NewTunnel for unknown request {}; ignored", nt.req_id);
    return;
  }
  const std::string key = asked->second.key;
  const bool remembered = asked->second.remembered;
  if (--asked->second.unanswered == 0 || !nt.error.empty()) {
    s.by_req_id.erase(asked);
  }
  const bool first = !s.by_req_id.contains(req_id) && s.first_requests.erase(req_id) > 0;
  auto spec = std::find_if(cfg_.tunnels.begin(), cfg_.tunnels.end(),
                           [&](const tunnel_spec& t) { return t.key() == key; });
  if (spec == cfg_.tunnels.end()) {
    // Removed by a reload while the server was answering.
    if (nt.error.empty() && s.close_granted) {
      send(s, proto::close_tunnel{nt.url});
    }
    return;
  }
  if (!nt.error.empty() && nt.error.starts_with(proto::registry_unavailable)) {
    // A node of a cluster that cannot reach its registry: nothing is wrong
    // with the request. The connection starts again (another node, or this
    // one later) and asks for every tunnel anew.
    spdlog::warn("the server cannot open tunnel '{}' ({}) now: {}; trying again", spec->name,
                 spec->protocol, nt.error);
    net::close_stream(*s.stream);
    return;
  }
  if (!nt.error.empty() && remembered) {
    // Taken by another client while this one was away: any name will do.
    spdlog::warn("tunnel '{}' ({}) cannot have its earlier URL back ({}); asking for a new one",
                 spec->name, spec->protocol, nt.error);
    assigned_ports_.erase(key);
    assigned_subdomains_.erase(key);
    const std::string again = request_tunnel(s, *spec);
    if (first) {
      s.first_requests.insert(again);
    }
    return;
  }
  if (!nt.error.empty()) {
    spdlog::error("the server refused tunnel '{}' ({}): {}", spec->name, spec->protocol, nt.error);
    if (observer_ != nullptr) {
      observer_->tunnel_refused(*spec, nt.error);
    }
    // Fatal only when nothing of what the client was started with works.
    if (first && s.first_requests.empty() && s.up == 0) {
      s.fatal = agent_result{1, "the server refused a tunnel: " + nt.error};
    }
    return;
  }
  if (spec->protocol == "tcp" && spec->remote_port == 0) {
    const std::string_view url = nt.url;
    std::uint16_t port = 0;
    const auto colon = url.rfind(':');
    if (colon != std::string_view::npos &&
        std::from_chars(url.data() + colon + 1, url.data() + url.size(), port).ec == std::errc{}) {
      assigned_ports_[key] = port;
    }
  }
  if (spec->is_http() && spec->subdomain.empty() && spec->hostname.empty()) {
    // scheme://<name>.<domain>[:port]: the server chose <name>.
    const std::string_view url = nt.url;
    const auto start = url.find("://");
    const auto dot = url.find('.', start == std::string_view::npos ? 0 : start + 3);
    if (start != std::string_view::npos && dot != std::string_view::npos && dot > start + 3) {
      assigned_subdomains_[key] = std::string(url.substr(start + 3, dot - start - 3));
    }
  }
  url_to_tunnel_[nt.url] = std::make_shared<const tunnel_spec>(*spec);
  publish_tunnels();
  auto& urls = key_to_url_[key];
  if (std::find(urls.begin(), urls.end(), nt.url) == urls.end()) {
    urls.push_back(nt.url);
  }
  ++s.up;
  s.was_up = true;
  spdlog::info("Forwarding {} -> {} (tunnel '{}')", nt.url, spec->local_addr(), spec->name);
  announce_tunnels();
}

void agent::announce_tunnels() {
  if (observer_ != nullptr) {
    observer_->tunnels_changed(tunnels());
  }
}

void agent::tell_if_settled() {
  if (current_ == nullptr || !current_->by_req_id.empty()) {
    return;
  }
  standby_wanted_.notify();
  if (!on_settled_) {
    return;
  }
  const std::string server = server_host_.find(':') == std::string::npos
                                 ? server_host_ + ":" + server_port_
                                 : "[" + server_host_ + "]:" + server_port_;
  const bool standing_by = standby_ != nullptr && standby_->ready && !standby_->over;
  settled_tunnels now{client_id_,   server,    current_->transport,
                      connections_, tunnels(), standing_by ? standby_->name() : std::string()};
  if (told_ == now) {
    return;
  }
  told_ = now;
  on_settled_(now);
}

void agent::give_up_tunnel(const tunnel_spec& t) {
  auto it = key_to_url_.find(t.key());
  if (it == key_to_url_.end()) {
    return;
  }
  const std::vector<std::string> urls = std::move(it->second);
  key_to_url_.erase(it);
  assigned_ports_.erase(t.key());
  for (const std::string& url : urls) {
    url_to_tunnel_.erase(url);
    publish_tunnels();
    if (current_ != nullptr && current_->close_granted) {
      send(*current_, proto::close_tunnel{url});
      spdlog::info("closed tunnel '{}': {}", t.name, url);
    } else {
      spdlog::warn(
          "closed tunnel '{}': {} is no longer served; this server cannot close one tunnel "
          "(ngrok 1.x protocol), so it keeps the URL until the client reconnects",
          t.name, url);
    }
  }
}

agent::tunnel_changes agent::update_tunnels(std::vector<tunnel_spec> next) {
  auto find = [](const std::vector<tunnel_spec>& in, const std::string& key) {
    auto it = std::find_if(in.begin(), in.end(), [&](const auto& t) { return t.key() == key; });
    return it == in.end() ? nullptr : &*it;
  };
  tunnel_changes changes;
  for (const tunnel_spec& old : cfg_.tunnels) {
    const tunnel_spec* now = find(next, old.key());
    if (now == nullptr) {
      changes.removed.push_back(old.key());
      give_up_tunnel(old);
    } else if (*now != old) {
      changes.changed.push_back(old.key());
      give_up_tunnel(old);
    } else {
      ++changes.unchanged;
    }
  }
  for (const tunnel_spec& t : next) {
    if (find(cfg_.tunnels, t.key()) == nullptr) {
      changes.added.push_back(t.key());
    }
  }
  cfg_.tunnels = std::move(next);
  if (!changes.added.empty() || !changes.removed.empty() || !changes.changed.empty()) {
    drop_standby();  // opened again with the new tunnels once they are up
  }
  if (current_ != nullptr) {
    for (const tunnel_spec& t : cfg_.tunnels) {
      const std::string key = t.key();
      if (std::find(changes.added.begin(), changes.added.end(), key) != changes.added.end() ||
          std::find(changes.changed.begin(), changes.changed.end(), key) != changes.changed.end()) {
        request_tunnel(*current_, t);
      }
    }
  }
  announce_tunnels();
  tell_if_settled();
  return changes;
}

std::vector<agent::live_tunnel> agent::tunnels() const {
  std::vector<live_tunnel> out;
  for (const tunnel_spec& t : cfg_.tunnels) {
    if (auto it = key_to_url_.find(t.key()); it != key_to_url_.end()) {
      for (const std::string& url : it->second) {
        out.push_back({t, url});
      }
    }
  }
  return out;
}

void agent::publish_tunnels() {
  published_tunnels_.store(std::make_shared<const tunnel_map>(url_to_tunnel_));
}

std::shared_ptr<const tunnel_spec> agent::find_tunnel(const std::string& url) const {
  const std::shared_ptr<const tunnel_map> tunnels = published_tunnels_.load();
  if (auto it = tunnels->find(url); it != tunnels->end()) {
    return it->second;
  }
  // A standby node names an HTTP(S) tunnel with its own public port, which
  // differs from the main node's where the nodes' ports differ (one host):
  // the scheme and host name are what identify it.
  const auto without_port = [](std::string_view u) {
    const auto host = u.find("://");
    const auto colon = u.rfind(':');
    return colon != std::string_view::npos && host != std::string_view::npos && colon > host + 2
               ? u.substr(0, colon)
               : u;
  };
  if (url.starts_with("tcp://")) {
    return nullptr;  // a tcp tunnel's port is its name
  }
  const std::string_view wanted = without_port(url);
  for (const auto& [known, spec] : *tunnels) {
    if (without_port(known) == wanted) {
      return spec;
    }
  }
  return nullptr;
}

asio::awaitable<void> agent::proxy_connection(net::host_port to, std::string tls_name) {
  auto [ec, stream] = co_await connect(std::move(to), std::move(tls_name));
  if (ec) {
    spdlog::debug("proxy connection failed: {}", ec.message());  // connect() said why
    co_return;
  }
  std::string reg = proto::encode_framed(proto::reg_proxy{client_id_});
  const net::error_code wec = co_await net::write_message(*stream, std::move(reg));
  if (wec) {
    co_return;
  }
  // Waits, pooled at the server, until a public connection needs it.
  net::frame_reader reader;
  auto [rec, msg] = co_await reader.read(*stream);
  if (rec) {
    net::close_stream(*stream);
    co_return;
  }
  auto* start = std::get_if<proto::start_proxy>(&msg);
  if (!start) {
    spdlog::warn("server sent {} on a proxy connection; closing it", proto::type_name(msg));
    net::close_stream(*stream);
    co_return;
  }
  auto spec = find_tunnel(start->url);
  if (!spec) {
    spdlog::warn("server started a connection for unknown tunnel {}; closing it", start->url);
    net::close_stream(*stream);
    co_return;
  }
  net::tls_channel tunnel(std::move(stream));
  co_await serve_proxied(tunnel, std::move(spec), std::move(*start), 0, reader.take_buffered());
}

}  // namespace porthole::client
