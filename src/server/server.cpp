#include "server/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <random>
#include <system_error>

#include "http/forwarding.h"
#include "http/message_parser.h"
#include "log/event.h"
#include "net/address.h"
#include "net/dialer.h"
#include "net/frame_io.h"
#include "net/relay.h"
#include "net/shards.h"
#include "net/spawn.h"
#include "net/tls.h"
#include "server/admin.h"
#include "server/control_session.h"
#include "server/node_link.h"
#include "server/public_h2.h"
#include "server/public_http.h"

namespace porthole::server {

namespace asio = net::asio;
using namespace asio::experimental::awaitable_operators;
using net::tcp;

namespace {

// Bounds the length of a client-sent id in a log line: RegProxy may carry up
// to a whole control frame of it.
std::string shown_id(std::string_view id) {
  constexpr std::size_t max_shown = 64;
  if (id.size() <= max_shown) {
    return std::string(id);
  }
  return std::string(id.substr(0, max_shown)) + "... (" + std::to_string(id.size()) + " bytes)";
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::vector<std::string> split_protocols(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto plus = s.find('+', start);
    out.push_back(lower(s.substr(start, plus == std::string_view::npos ? plus : plus - start)));
    if (plus == std::string_view::npos) {
      return out;
    }
    start = plus + 1;
  }
}

proto::new_tunnel refusal(std::string error) {
  return {"", "", "", std::move(error)};
}

std::vector<proto::new_tunnel> refused(std::string error) {
  return {refusal(std::move(error))};
}

// "is already registered" is ngrokd 1.7's wording, which users and scripts know.
std::string taken_message(std::string_view url, claim_outcome why) {
  std::string text = "The tunnel " + std::string(url) + " is already registered";
  if (why == claim_outcome::held_elsewhere) {
    return text +
           ": it is held for another client that disconnected and may come back; it is free "
           "again once that client's reconnect grace period ends.";
  }
  return text + " by another client.";
}

// Below it, ports are root's (and other services'): without --tcp-ports a
// client may ask only for ports from here up.
constexpr std::uint16_t first_unprivileged_port = 1024;

// Every refusal of a TCP port a client asked for says the same: whether
// another tunnel holds it, a local service listens on it or the bind was not
// permitted must not be told apart (that would scan the server's ports).
std::string port_unavailable(std::uint16_t port) {
  return "Remote port " + std::to_string(port) +
         " is not available; ask for another, or for none and the server chooses.";
}

std::string peer_of(const tcp::socket& s) {
  net::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? "unknown" : net::to_string(ep);
}

std::string ip_of(const tcp::socket& s) {
  net::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? "unknown" : ip_string(ep);
}

public_protocol protocol_of(std::string_view scheme) {
  if (scheme == "http") {
    return public_protocol::http;
  }
  return scheme == "https" ? public_protocol::https : public_protocol::tcp;
}

// Counts a TCP tunnel's bytes as they move, so a long connection shows in
// the counters before it ends; `relayed`: the tunnel side is another node.
class byte_counter final : public net::relay_observer {
 public:
  explicit byte_counter(std::shared_ptr<metrics> m, bool relayed = false)
      : m_(std::move(m)), relayed_(relayed) {}
  void to_near(std::string_view bytes) noexcept override {
    m_->out(public_protocol::tcp) += bytes.size();
    if (relayed_) {
      m_->relay_bytes_in += bytes.size();
    }
  }
  void to_tunnel(std::string_view bytes) noexcept override {
    m_->in(public_protocol::tcp) += bytes.size();
    if (relayed_) {
      m_->relay_bytes_out += bytes.size();
    }
  }

 private:
  std::shared_ptr<metrics> m_;
  bool relayed_;
};

// A claim goes on to its answer even if the session that asked for it ends
// meanwhile, which cancels the session's coroutines: a claim cut short may
// have won the name in a cluster's store with nobody here to give it back.
// Run to its end, its tunnels are released by keep_claimed().
asio::awaitable<claim_answer> claim_to_the_end(std::shared_ptr<directory> names, std::string name,
                                               claimant who,
                                               std::vector<std::shared_ptr<tunnel>> tunnels) {
  const auto executor = co_await asio::this_coro::executor;
  auto claim = names->claim(std::move(name), std::move(who), std::move(tunnels));
  auto uncancelled = asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable);
  co_return co_await asio::co_spawn(executor, std::move(claim), std::move(uncancelled));
}

}  // namespace

/// A bound listening socket and what it serves.
struct server::listener {
  enum class kind { tunnel_and_https, tunnel, https, http, node };
  kind what;
  tcp::acceptor acceptor;
};

/// A TCP tunnel's public port.
struct server::tcp_listener {
  std::string url;
  tcp::acceptor acceptor;
};

server::server(asio::io_context& ioc, server_config cfg, std::shared_ptr<directory> names,
               std::function<directory::clock::time_point()> now,
               std::shared_ptr<token_source> tokens)
    : ioc_(ioc),
      cfg_(std::move(cfg)),
      directory_(names ? std::move(names) : std::make_shared<local_directory>(now)),
      now_(std::move(now)),
      tunnel_ips_(cfg_.max_tunnel_conns_per_ip),
      public_ips_(cfg_.max_public_conns_per_ip),
      handshakes_(cfg_.max_handshakes) {
  if (!tokens) {
    tokens = std::make_shared<tokens_db_source>(cfg_.state_dir / "tokens.db");
  }
  tokens_ = std::make_unique<authtokens>(
      cfg_.authtokens, std::move(tokens),
      token_limits{cfg_.max_tunnels_per_token, cfg_.max_tcp_ports_per_token,
                   cfg_.max_conns_per_token});
  cfg_.domain = lower(cfg_.domain);
  names_.domain = cfg_.domain;
  for (const std::string& pattern : cfg_.allowed_hostnames) {
    names_.allowed.push_back(lower(pattern));
  }
  names_.allow_any = cfg_.allow_any_hostname;
  shards_.push_back({ioc_.get_executor(), metrics_});
}

server::~server() = default;

void server::use_shards(std::vector<asio::any_io_executor> executors) {
  shards_.resize(1);
  for (std::size_t i = 1; i < executors.size(); ++i) {
    shards_.push_back({std::move(executors[i]), std::make_shared<metrics>()});
  }
}

void server::start() {
  std::filesystem::path cert = cfg_.tls_cert;
  std::filesystem::path key = cfg_.tls_key;
  std::optional<net::dev_certificates> dev;
  if (cfg_.dev && cert.empty()) {
    dev = net::ensure_dev_certificates(cfg_.state_dir, cfg_.domain, dev_certificate_ips());
    cert = dev->server_cert;
    key = dev->server_key;
    log::info("dev CA certificate; clients must trust it (porthole --trust-ca PATH ...)",
              {{"path", dev->ca_cert.string()}});
  }
  if (cert.empty() || key.empty()) {
    throw std::runtime_error(
        "portholed needs a TLS certificate: give --tls-cert and --tls-key (PEM files for the "
        "domain and "
        "*.domain), or --dev for a development certificate");
  }
  tls_ = std::make_unique<asio::ssl::context>(net::make_server_tls(cert, key));
  // Public HTTPS speaks HTTP/2 to who offers it, for a name this node serves
  // to a porthole client: an ngrok 1.x client's names, and names relayed to
  // another node, stay HTTP/1.1. (Asked on this thread, in the handshake.)
  offers_h2_ = [this](std::string_view sni) {
    const route r = find_route("https", sni);
    return r.local && r.local->public_h2;
  };
  net::offer_h2_and_http1(*tls_, &offers_h2_);
  if (dev) {
    net::enable_dev_leaf_minting(*tls_, *dev, cfg_.domain);
  }
  tokens_->refresh();
  if (!tokens_->required()) {
    log::warn("any client may open tunnels on this server: no --authtokens file and no tokens",
              {{"tokens", tokens_->source()}});
  }
  net::spawn(ioc_.get_executor(), watch_tokens(), "tokens");

  auto add = [this](listener::kind what, const std::string& addr,
                    std::string_view name) -> listener& {
    auto ep = net::listen_endpoint(net::split_host_port(addr));
    listeners_.push_back(std::make_unique<listener>(
        listener{what, net::bind_acceptor(ioc_.get_executor(), ep, name)}));
    // Copied by Linux to every connection accepted here (accept_loop, which
    // takes them until accept4() says there are no more).
    net::error_code ignored;
    listeners_.back()->acceptor.set_option(tcp::no_delay(true), ignored);
    listeners_.back()->acceptor.set_option(asio::socket_base::keep_alive(true), ignored);
    listeners_.back()->acceptor.non_blocking(true, ignored);
    return *listeners_.back();
  };
  // Port 0 asks the OS for a free port, so two ":0" listeners are distinct.
  const bool shared_port = !cfg_.tunnel_addr.empty() && cfg_.tunnel_addr == cfg_.https_addr &&
                           net::split_host_port(cfg_.tunnel_addr).port != "0";
  if (shared_port) {
    auto& l =
        add(listener::kind::tunnel_and_https, cfg_.tunnel_addr, "tunnel clients and public https");
    https_port_ = l.acceptor.local_endpoint().port();
  } else {
    if (cfg_.tunnel_addr.empty()) {
      throw std::runtime_error("--tunnel-addr must not be empty");
    }
    add(listener::kind::tunnel, cfg_.tunnel_addr, "tunnel clients");
    if (!cfg_.https_addr.empty()) {
      https_port_ = add(listener::kind::https, cfg_.https_addr, "public https")
                        .acceptor.local_endpoint()
                        .port();
    }
  }
  if (!cfg_.http_addr.empty()) {
    http_port_ =
        add(listener::kind::http, cfg_.http_addr, "public http").acceptor.local_endpoint().port();
  }
  if (cfg_.cluster.enabled()) {
    node_server_tls_ = std::make_unique<asio::ssl::context>(
        net::make_node_server_tls(cfg_.cluster.ca, cfg_.cluster.cert, cfg_.cluster.key));
    node_client_tls_ = std::make_unique<asio::ssl::context>(
        net::make_node_client_tls(cfg_.cluster.ca, cfg_.cluster.cert, cfg_.cluster.key));
    node_sessions_ = std::make_unique<net::tls_session_cache>(*node_client_tls_);
    auto& l = add(listener::kind::node, cfg_.cluster.node_addr, "other nodes");
    node_addr_ = net::to_string(l.acceptor.local_endpoint());
    join_cluster();
  }
  for (auto& l : listeners_) {
    const std::string where = net::to_string(l->acceptor.local_endpoint());
    switch (l->what) {
      case listener::kind::tunnel_and_https:
        log::info("listening for tunnel clients", {{"addr", where}});
        log::info("listening for public https", {{"addr", where}});
        break;
      case listener::kind::tunnel:
        log::info("listening for tunnel clients", {{"addr", where}});
        break;
      case listener::kind::https:
        log::info("listening for public https", {{"addr", where}});
        break;
      case listener::kind::http:
        log::info("listening for public http", {{"addr", where}});
        break;
      case listener::kind::node:
        log::info("listening for other nodes", {{"addr", where}, {"node", cfg_.cluster.node_id}});
        break;
    }
    net::spawn(ioc_.get_executor(), accept_loop(*l), "listener " + where);
  }
  if (!cfg_.admin_addr.empty()) {
    admin_ = std::make_unique<admin_endpoint>(
        ioc_.get_executor(), cfg_.admin_addr,
        admin_endpoint::handlers{[this] { return metrics_page(); }, [this] { return health(); }});
    admin_->start();
  }
  log::info("portholed ready", {{"domain", cfg_.domain}});
}

// The dev certificate names the addresses clients dial: loopback's always,
// and the listeners' own when they are bound to one (a node of a cluster on
// 127.0.0.2, a development server on a LAN address).
std::vector<std::string> server::dev_certificate_ips() const {
  std::vector<std::string> ips;
  for (const std::string& addr : {cfg_.tunnel_addr, cfg_.https_addr}) {
    if (addr.empty()) {
      continue;
    }
    net::error_code ec;
    const auto ip = asio::ip::make_address(net::split_host_port(addr).host, ec);
    if (ec || ip.is_unspecified() || ip.to_string() == "127.0.0.1" || ip.to_string() == "::1") {
      continue;
    }
    if (std::find(ips.begin(), ips.end(), ip.to_string()) == ips.end()) {
      ips.push_back(ip.to_string());
    }
  }
  return ips;
}

std::optional<tcp::endpoint> server::admin_endpoint_address() const {
  if (!admin_) {
    return std::nullopt;
  }
  return admin_->endpoint();
}

// "ok" while serving; a cluster node says how its lease and etcd are, and is
// unhealthy once etcd said its lease expired (it holds no names until it
// has a new one).
std::pair<bool, std::string> server::health() const {
  if (stopping_) {
    return {false, "shutting down\n"};
  }
  const auto c = directory_->figures();
  if (!c) {
    return {true, "ok\n"};
  }
  const std::string lease = c->lease_lost    ? "lost (etcd let it expire)"
                            : c->lease_alive ? "alive"
                                             : "not renewed within its TTL (etcd unreachable)";
  const std::string text = std::string(c->lease_lost ? "unhealthy" : "ok") + "\ncluster node " +
                           c->node_id + ": lease " + lease + "; " + std::to_string(c->nodes) +
                           " nodes registered\n";
  return {!c->lease_lost, text};
}

// The gauges of what the server holds are counted when asked for: the maps
// are small, and nothing can drift.
namespace {

// Runs on the shard that owns `m`.
asio::awaitable<metrics> copy_counts(std::shared_ptr<metrics> m) {
  co_return *m;
}

}  // namespace

asio::awaitable<std::string> server::metrics_page() {
  // Each shard's counters are copied on their own thread, and summed here.
  metrics m = *metrics_;
  for (std::size_t i = 1; i < shards_.size(); ++i) {
    auto copying = asio::co_spawn(shards_[i].executor, copy_counts(shards_[i].counters),
                                  net::on_other_shard());
    const metrics theirs = co_await std::move(copying);
    add_counts(m, theirs);
  }
  m.clients = 0;
  for (const auto& [id, weak] : sessions_) {
    const auto s = weak.lock();
    m.clients += s && !s->closed() ? 1 : 0;
  }
  m.tunnels = {};
  for (const auto& t : directory_->local_tunnels()) {
    ++m.tunnels_of(protocol_of(t->protocol));
  }
  m.cluster = directory_->figures();
  co_return render_metrics(m, read_process_stats(), PORTHOLE_VERSION);
}

void server::stop() {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  if (cfg_.cluster.enabled()) {
    directory_->begin_leaving();
  }
  for (auto& l : listeners_) {
    net::error_code ignored;
    l->acceptor.close(ignored);
  }
  std::vector<std::shared_ptr<control_session>> live;
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) {
      live.push_back(std::move(s));
    }
  }
  for (auto& s : live) {
    if (cfg_.cluster.enabled()) {
      s->move_away();  // its client goes to another node; its streams finish here
    } else {
      s->close();
    }
  }
  if (cfg_.cluster.enabled()) {
    net::spawn(ioc_.get_executor(), leave_cluster(), "cluster leave");
  }
  log::info("portholed stopped", {{"clients_disconnected", live.size()}});
}

// Counted as a connection, so that the drain waits for it; it must end
// within the drain (portholed's main gives it two seconds).
asio::awaitable<void> server::leave_cluster() {
  active_guard counted(active_);
  co_await directory_->leave(directory::clock::now() + std::chrono::milliseconds(1500));
}

namespace {
// Connections taken per wake-up of a listener before the loop serves others.
constexpr int accept_batch = 64;
}  // namespace

// Accepted with accept4() rather than Asio's accept: a connection joins an
// event loop once, the loop of the thread that serves it. A plain HTTP
// connection whose first request head came with it goes straight to the
// thread of its tunnel's stream; the others join this loop.
asio::awaitable<void> server::accept_loop(listener& l) {
  for (;;) {
    auto [ec] = co_await l.acceptor.async_wait(tcp::acceptor::wait_read, net::use_nothrow);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) {
        co_return;
      }
      log::warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(ioc_, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_nothrow);
      continue;
    }
    for (int taken = 0; taken < accept_batch && !stopping_; ++taken) {
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      const int fd = ::accept4(l.acceptor.native_handle(), reinterpret_cast<sockaddr*>(&address),
                               &length, SOCK_CLOEXEC);
      if (fd >= 0) {
        tcp::endpoint from;
        std::memcpy(from.data(), &address, std::min<std::size_t>(length, from.capacity()));
        from.resize(std::min<std::size_t>(length, from.capacity()));
        take(l, fd, from);
        continue;
      }
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        break;
      }
      if (error == EINTR || error == ECONNABORTED || error == EPROTO) {
        continue;  // that connection is gone; the next may be there
      }
      // Out of file descriptors and the like: log, breathe, go on.
      log::warn("accept failed", {{"error", std::system_category().message(error)}});
      asio::steady_timer pause(ioc_, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_nothrow);
      break;
    }
  }
}

void server::take(listener& l, int fd, const tcp::endpoint& from) {
  // TCP_NODELAY and SO_KEEPALIVE come from the listening socket (Linux
  // copies them to each accepted one), and the peer's address from accept:
  // no system call per connection for either.
  public_peer peer{net::to_string(from), ip_string(from), from};
  const bool tunnel_port = l.what == listener::kind::tunnel || l.what == listener::kind::node;
  ip_connection_counts::slot counted =
      (tunnel_port ? tunnel_ips_ : public_ips_).acquire(peer.ip);
  if (!counted) {
    // Closed at once, before any TLS work: a flood from one address costs
    // an accept and a close per connection.
    ::close(fd);
    refuse_over_ip_limit(
        peer, tunnel_port ? "tunnel" : "public",
        tunnel_port ? cfg_.max_tunnel_conns_per_ip : cfg_.max_public_conns_per_ip,
        tunnel_port ? "--max-tunnel-conns-per-ip" : "--max-public-conns-per-ip");
    return;
  }
  bool head_seen = false;
  if (l.what == listener::kind::http && shards_.size() > 1 && !stopping()) {
    if (std::optional<std::optional<pinned>> decided = pin_by_head(fd, peer.addr)) {
      head_seen = true;
      if (std::optional<pinned>& to = *decided) {
        net::error_code ec;
        tcp::socket sock(to->via.executor);
        sock.assign(from.protocol(), fd, ec);
        if (ec) {
          ::close(fd);
          return;
        }
        std::string what = "public http " + peer.addr;
        net::spawn(ioc_.get_executor(),
                   serve_pinned_http(std::move(sock), std::move(peer), std::move(counted),
                                     std::move(*to)),
                   std::move(what));
        return;
      }
    }
  }
  net::error_code ec;
  tcp::socket sock(ioc_);
  sock.assign(from.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    log::warn("accepted connection dropped", {{"peer", peer.addr}, {"error", ec.message()}});
    return;
  }
  switch (l.what) {
    case listener::kind::http: {
      std::string what = "public http " + peer.addr;
      net::spawn(ioc_.get_executor(),
                 serve_plain_http(std::move(sock), std::move(peer), std::move(counted), head_seen),
                 std::move(what));
      break;
    }
    case listener::kind::tunnel_and_https:
    case listener::kind::tunnel:
    case listener::kind::https: {
      const bool tunnel_only = l.what == listener::kind::tunnel;
      const bool public_only = l.what == listener::kind::https;
      std::string what = (tunnel_only   ? "tunnel connection "
                          : public_only ? "public https "
                                        : "connection ") +
                         peer.addr;
      net::spawn(ioc_.get_executor(),
                 serve_tls(std::move(sock), std::move(peer), std::move(counted), tunnel_only,
                           public_only),
                 std::move(what));
      break;
    }
    case listener::kind::node:
      net::spawn(ioc_.get_executor(), serve_node(std::move(sock)),
                 "node connection " + peer.addr);
      break;
  }
}

void server::refuse_over_ip_limit(const public_peer& from, std::string_view port,
                                  std::size_t limit, std::string_view flag) {
  metrics_->count(error_kind::limit);
  if (auto skipped = ip_limit_log_.admit()) {
    log::warn("connection refused: the address has its limit open",
              {{"peer", from.addr},
               {"ip", from.ip},
               {"listener", port},
               {"limit", limit},
               {"flag", flag},
               {"suppressed", log::if_nonzero(*skipped)}});
  }
}

std::optional<server::pinned> server::pin(const std::shared_ptr<tunnel>& t, std::string_view peer) {
  if (shards_.size() < 2 || !t) {
    return std::nullopt;
  }
  auto session = t->session.lock();
  if (!session || session->closed()) {
    return std::nullopt;
  }
  mux_link via = session->mux();
  if (!via || via.shard == 0) {
    return std::nullopt;
  }
  // Refused quietly: the connection then stays here, where it is refused
  // with a page, counted and logged.
  auto slot = session->try_admit_public();
  if (!slot) {
    return std::nullopt;
  }
  log::trace("public connection served on another thread",
             {{"url", t->url}, {"peer", peer}, {"thread", std::to_string(via.shard)}});
  return pinned{t, std::move(via), std::move(*slot)};
}

namespace {
// How long a new plain HTTP connection's first request head is awaited
// before the connection is served here, whatever it asks for: clients send
// it with the connection.
constexpr auto head_pin_wait = std::chrono::milliseconds(200);
// The part of a first request looked at; a longer head is served here.
constexpr std::size_t head_pin_bytes = 16 * 1024;
}  // namespace

std::optional<std::optional<server::pinned>> server::pin_by_head(int fd, std::string_view peer) {
  // Looked at, not read: the connection's own reader reads it wherever it
  // runs. The buffer is this loop's, reused.
  peek_buffer_.resize(head_pin_bytes);
  const ssize_t n =
      ::recv(fd, peek_buffer_.data(), peek_buffer_.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return std::nullopt;  // nothing yet: not decided
  }
  if (n <= 0) {
    return std::optional<pinned>{};
  }
  http::request_parser parser(http::parser_limits{cfg_.header_limit, cfg_.max_header_fields});
  const http::parse_result r =
      parser.parse(std::string_view(peek_buffer_.data(), static_cast<std::size_t>(n)));
  if (r.error || !r.head_complete) {
    return std::optional<pinned>{};
  }
  const auto host_field = parser.head().find("host");
  if (!host_field || host_field->empty()) {
    return std::optional<pinned>{};
  }
  const route to = find_route("http", http::routing_host(*host_field));
  if (!to.local || to.remote) {
    return std::optional<pinned>{};
  }
  return pin(to.local, peer);
}

asio::awaitable<void> server::serve_plain_http(tcp::socket sock, public_peer from,
                                               ip_connection_counts::slot counted_ip,
                                               bool head_seen) {
  active_guard counted(active_);
  public_conn_count in_metrics(metrics_, public_protocol::http);
  if (!head_seen && shards_.size() > 1 && !stopping()) {
    // Its first request head did not come with it (clients send it with the
    // connection): wait for it a moment, then serve it where it belongs.
    asio::steady_timer timer(ioc_, head_pin_wait);
    auto waited = co_await (sock.async_wait(tcp::socket::wait_read, net::use_nothrow) ||
                            timer.async_wait(net::use_nothrow));
    if (waited.index() == 0 && !std::get<0>(std::get<0>(waited)) && !stopping()) {
      std::optional<std::optional<pinned>> decided = pin_by_head(sock.native_handle(), from.addr);
      if (decided && *decided) {
        net::move_to(sock, (*decided)->via.executor, from.endpoint.protocol());
        co_await on_its_shard(std::move(sock), std::move(from), std::move(**decided));
        co_return;
      }
    }
  }
  co_await serve_public_http(*this, std::move(sock), "http", std::move(from));
}

asio::awaitable<void> server::serve_pinned_http(tcp::socket sock, public_peer from,
                                                ip_connection_counts::slot counted_ip, pinned to) {
  active_guard counted(active_);
  public_conn_count in_metrics(metrics_, public_protocol::http);
  co_await on_its_shard(std::move(sock), std::move(from), std::move(to));
}

// Served on the thread of the stream that carries it (`sock` is already of
// that thread's loop); what counts it stays in the awaiting frame, on this
// loop, until it ends.
asio::awaitable<void> server::on_its_shard(tcp::socket sock, public_peer from, pinned to) {
  pinned_public there{to.t, to.via, shards_[to.via.shard].counters};
  return asio::co_spawn(
      to.via.executor,
      serve_public_http(*this, std::move(sock), "http", std::move(from), std::move(there)),
      net::on_other_shard());
}

asio::awaitable<void> server::serve_tls(tcp::socket sock, public_peer from,
                                        ip_connection_counts::slot counted_ip, bool tunnel_only,
                                        bool public_only) {
  active_guard counted(active_);
  const std::string& peer = from.addr;
  const std::string& ip = from.ip;
  auto stream = std::make_unique<net::tls_stream>(std::move(sock), *tls_);
  handshake_slots::slot pending = handshakes_.enter(stream->next_layer(), peer);
  asio::steady_timer timer(ioc_, cfg_.tls_handshake_timeout);
  auto result =
      co_await (stream->async_handshake(asio::ssl::stream_base::server, net::use_nothrow) ||
                timer.async_wait(net::use_nothrow));
  if (pending.cut_off()) {
    metrics_->count(error_kind::limit);
    co_return;
  }
  if (result.index() == 1) {
    metrics_->count(error_kind::tls_handshake);
    if (auto skipped = handshake_timeout_log_.admit()) {
      log::info("TLS handshake not done in time; closing",
                {{"peer", peer},
                 {"timeout", seconds_text(cfg_.tls_handshake_timeout)},
                 {"suppressed", log::if_nonzero(*skipped)}});
    }
    co_return;
  }
  if (auto [ec] = std::get<0>(result); ec) {
    metrics_->count(error_kind::tls_handshake);
    log::debug("TLS handshake failed", {{"peer", peer}, {"error", ec.message()}});
    co_return;
  }
  const std::string sni = net::server_name(stream->native_handle());
  const bool tunnel_protocol =
      tunnel_only || (!public_only && sni_is_tunnel_client(sni, cfg_.domain));
  if (tunnel_protocol) {
    if (!tunnel_only) {
      // On a port shared with public HTTPS the connection counted as public
      // until its SNI said otherwise; tunnel clients have their own bound.
      counted_ip = tunnel_ips_.acquire(ip);
      if (!counted_ip) {
        net::close_stream(*stream);
        refuse_over_ip_limit(from, "tunnel", cfg_.max_tunnel_conns_per_ip,
                             "--max-tunnel-conns-per-ip");
        co_return;
      }
    }
    co_await serve_tunnel_client(std::move(stream), std::move(pending), std::move(counted_ip));
  } else {
    pending.leave();
    public_conn_count in_metrics(metrics_, public_protocol::https);
    std::optional<pinned> to;
    if (shards_.size() > 1 && !sni.empty() && !stopping()) {
      // Routed by its SNI name; a request for another name on it gets 421.
      if (route r = find_route("https", sni); r.local && !r.remote) {
        to = pin(r.local, peer);
      }
    }
    const bool h2 = net::alpn_protocol(stream->native_handle()) == "h2";
    if (to) {
      net::move_to(*stream, to->via.executor, from.endpoint.protocol());
      pinned_public there{to->t, to->via, shards_[to->via.shard].counters};
      auto serving = asio::co_spawn(
          to->via.executor,
          h2 ? serve_public_h2(*this, std::move(stream), "https", std::move(from), {},
                               std::move(there))
             : serve_public_http(*this, std::move(stream), "https", std::move(from), false,
                                 std::move(there)),
          net::on_other_shard());
      co_await std::move(serving);
      co_return;
    }
    if (h2) {
      auto serving = serve_public_h2(*this, std::move(stream), "https", std::move(from), {},
                                     std::nullopt);
      co_await std::move(serving);
      co_return;
    }
    co_await serve_public_http(*this, std::move(stream), "https", std::move(from));
  }
}

asio::awaitable<void> server::watch_tokens() {
  tokens_->on_changed([this] { tokens_changed_.notify(); });
  while (!stopping_) {
    co_await tokens_changed_.wait_until(std::chrono::steady_clock::now() +
                                        cfg_.token_poll_interval);
    if (stopping_) {
      co_return;
    }
    if (tokens_->refresh()) {
      std::vector<std::shared_ptr<control_session>> revoked;
      for (auto& [id, weak] : sessions_) {
        auto s = weak.lock();
        if (s && !s->closed() && s->account() && !tokens_->live(s->account()->who())) {
          revoked.push_back(std::move(s));
        }
      }
      for (auto& s : revoked) {
        log::warn("token revoked; closing its client's control connection",
                  {{"client", s->client_id()}, {"token", s->account()->who().label}});
        s->close();
      }
    }
    tokens_->flush_uses();
    std::erase_if(accounts_, [](const auto& a) { return a.second.expired(); });
  }
}

std::shared_ptr<token_account> server::account_for(const token_identity& who) {
  if (who.key.empty()) {
    return nullptr;
  }
  if (auto it = accounts_.find(who.key); it != accounts_.end()) {
    if (auto a = it->second.lock()) {
      return a;
    }
  }
  auto a = std::make_shared<token_account>(who);
  accounts_[who.key] = a;
  return a;
}

std::string server::reserved_refusal(const control_session& session, std::string_view host) const {
  const std::string suffix = "." + cfg_.domain;
  if (!host.ends_with(suffix)) {
    return "";
  }
  // A name below a reserved one (--allow-any-hostname) could set its cookies.
  std::string_view label = host.substr(0, host.size() - suffix.size());
  label = label.substr(label.rfind('.') + 1);
  const std::string holder = tokens_->reserved_by(label);
  if (holder.empty() || (session.account() && session.account()->who().key == holder)) {
    return "";
  }
  return "The subdomain " + std::string(label) +
         " is reserved for another authtoken on this server.";
}

void server::refuse(net::tls_stream& stream, std::string_view peer, const turn_away& why) {
  if (why.counted) {
    metrics_->count(*why.counted);
  }
  if (why.log) {
    if (auto skipped = why.log->admit()) {
      log::warn(why.message,
                {{"peer", peer},
                 {why.detail_key, why.detail_key.empty() ? log::field::value_type(log::omitted{})
                                                         : std::string_view(why.detail)},
                 {"suppressed", log::if_nonzero(*skipped)}});
    }
  }
  net::close_stream(stream);
}

asio::awaitable<void> server::answer_auth(net::tls_stream& stream, proto::auth_resp refusal) {
  ++metrics_->messages_out["AuthResp"];
  co_await net::write_message(stream, proto::encode_framed(refusal));
}

asio::awaitable<void> server::serve_tunnel_client(std::unique_ptr<net::tls_stream> stream,
                                                  handshake_slots::slot pending,
                                                  ip_connection_counts::slot counted_ip) {
  const std::string peer = peer_of(stream->next_layer());
  net::frame_reader reader;
  asio::steady_timer timer(ioc_, cfg_.first_message_timeout);
  auto first = co_await (reader.read(*stream) || timer.async_wait(net::use_nothrow));
  if (pending.cut_off()) {
    co_return refuse(*stream, peer, {});
  }
  pending.leave();
  if (first.index() == 1) {
    co_return refuse(
        *stream, peer,
        {error_kind::first_message_timeout, &first_message_log_,
         "no first message in time; closing", "timeout", seconds_text(cfg_.first_message_timeout)});
  }
  auto [ec, msg] = std::get<0>(std::move(first));
  if (ec == asio::error::eof) {
    co_return refuse(*stream, peer, {});
  }
  if (ec) {
    co_return refuse(*stream, peer,
                     {error_kind::bad_first_message, &bad_first_log_, "bad first message; closing",
                      "error", ec.message()});
  }
  ++metrics_->messages_in[proto::type_name(msg)];
  if (auto* auth = std::get_if<proto::auth>(&msg)) {
    co_return co_await serve_client(std::move(stream), std::move(reader), std::move(*auth), peer);
  }
  if (auto* reg = std::get_if<proto::reg_proxy>(&msg)) {
    co_return co_await add_proxy_connection(std::move(stream), std::move(reader), reg->client_id,
                                            peer, std::move(counted_ip));
  }
  if (auto* reg = std::get_if<proto::reg_mux>(&msg)) {
    co_return co_await serve_mux_connection(std::move(stream), std::move(reader), reg->client_id,
                                            peer);
  }
  refuse(*stream, peer,
         {error_kind::bad_first_message, &bad_first_log_,
          "first message is not Auth, RegProxy or RegMux; closing", "type",
          std::string(proto::type_name(msg))});
}

asio::awaitable<void> server::add_proxy_connection(std::unique_ptr<net::tls_stream> stream,
                                                   net::frame_reader reader, std::string client_id,
                                                   std::string peer,
                                                   ip_connection_counts::slot counted_ip) {
  auto session = find_session(client_id);
  if (!session) {
    // The client id is the proxy connection's only credential: an id no
    // live client has is refused, whoever sends it.
    co_return refuse(*stream, peer,
                     {error_kind::bad_first_message, &reg_proxy_log_,
                      "RegProxy for an unknown client; closing", "client", shown_id(client_id)});
  }
  if (!reader.take_buffered().empty()) {
    co_return refuse(*stream, peer,
                     {error_kind::bad_first_message, &bad_first_log_,
                      "bytes after RegProxy before StartProxy; closing"});
  }
  const std::size_t surplus = session->pool().add(std::move(stream), std::move(counted_ip));
  if (surplus > 0) {
    if (auto skipped = surplus_log_.admit()) {
      log::warn("more proxy connections than the client's pool (and takers); closed the surplus",
                {{"peer", peer},
                 {"client", session->client_id()},
                 {"pool", session->pool().target()},
                 {"surplus", surplus},
                 {"suppressed", log::if_nonzero(*skipped)}});
    }
  }
}

asio::awaitable<void> server::serve_mux_connection(std::unique_ptr<net::tls_stream> stream,
                                                   net::frame_reader reader, std::string client_id,
                                                   std::string peer) {
  auto session = find_session(client_id);
  if (!session || !session->mux_granted()) {
    co_return refuse(*stream, peer,
                     {error_kind::bad_first_message, &reg_proxy_log_,
                      session ? "RegMux for a base-protocol client; closing"
                              : "RegMux for an unknown client; closing",
                      "client", shown_id(client_id)});
  }
  co_await session->serve_mux(std::move(stream), reader.take_buffered(), std::move(peer));
}

asio::awaitable<void> server::serve_client(std::unique_ptr<net::tls_stream> stream,
                                           net::frame_reader reader, proto::auth auth_msg,
                                           std::string peer) {
  const proto::auth* auth = &auth_msg;
  if (auth->version != proto::protocol_version) {
    proto::auth_resp answer{"", "", "",
                            "Incompatible versions. Server " + std::string(proto::mm_version) +
                                ", client " + auth->mm_version +
                                ". Use an ngrok 1.x compatible client.",
                            std::nullopt};
    co_await answer_auth(*stream, std::move(answer));
    co_return refuse(
        *stream, peer,
        {error_kind::version_refused, &bad_first_log_,
         "client refused: its protocol version is not 2", "version", shown_id(auth->version)});
  }
  tokens_->refresh();
  const std::optional<token_identity> who = tokens_->check(auth->user);
  if (!who) {
    proto::auth_resp answer{"", "", "", "invalid authtoken", std::nullopt};
    co_await answer_auth(*stream, std::move(answer));
    co_return refuse(
        *stream, peer,
        {error_kind::auth_refused, &bad_first_log_, "client refused: invalid authtoken"});
  }
  if (stopping_) {
    co_return refuse(*stream, peer, {});
  }

  // A client id is kept across reconnects, but only by the token that made it.
  // It is the credential of the client's proxy connections, so one a client
  // brings must be at least as long as the server's own (128 random bits in
  // hex); the porthole and ngrok clients bring back the id they were given.
  std::string client_id = auth->client_id;
  const bool id_ok = client_id.size() >= 32 && client_id.size() <= 64 &&
                     std::all_of(client_id.begin(), client_id.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c));
                     });
  if (!id_ok || (client_tokens_.contains(client_id) && client_tokens_[client_id] != auth->user)) {
    client_id = random_client_id();
  }
  // A second connection that stands by on this node for a client whose main
  // connection is on another node (extension "standby").
  const bool standby = auth->ext && auth->ext->standby;
  if (standby) {
    const auto& features = auth->ext->features;
    const bool asks_mux =
        std::find(features.begin(), features.end(), proto::feature_mux) != features.end();
    std::string why;
    if (!directory_->takes_standby() || !cfg_.mux || !asks_mux) {
      why = "this server takes no standby connection (it is not a cluster node, or has no mux)";
    } else if (client_id != auth->client_id) {
      why = "a standby connection needs the client id of the client's main connection";
    } else if (auto main = find_session(client_id); main && !main->standby()) {
      why = "the client's main connection is on this node; stand by on another one";
    }
    if (!why.empty()) {
      proto::auth_resp answer{"", "", "", why, std::nullopt};
      co_await answer_auth(*stream, std::move(answer));
      co_return refuse(*stream, peer, {});
    }
  }
  if (auto old = find_session(client_id)) {
    log::info(old->standby() ? "client reconnected; replacing its standby connection"
                             : "client reconnected; replacing its old control connection",
              {{"client", client_id}, {"peer", peer}});
    old->close();
  }
  client_tokens_[client_id] = auth->user;

  int pool_size = cfg_.pool_size;
  bool mux_granted = false;
  bool muxes_granted = false;
  bool stream_windows_granted = false;
  proto::auth_resp resp{std::string(proto::protocol_version), std::string(proto::mm_version),
                        client_id, "", std::nullopt};
  if (auth->ext) {
    if (auth->ext->pool_size && *auth->ext->pool_size > 0) {
      pool_size = std::min(*auth->ext->pool_size, cfg_.max_pool_size);
    }
    const auto& features = auth->ext->features;
    mux_granted = cfg_.mux &&
                  std::find(features.begin(), features.end(), proto::feature_mux) != features.end();
    if (mux_granted) {
      // Streams replace the pool; proxy connections are asked for only on
      // demand, while the multiplexed connection is not up.
      pool_size = 0;
    }
    resp.ext = proto::extensions{PORTHOLE_VERSION, pool_size, {}};
    if (mux_granted) {
      resp.ext->features.emplace_back(proto::feature_mux);
      if (std::find(features.begin(), features.end(), proto::feature_muxes) != features.end()) {
        resp.ext->features.emplace_back(proto::feature_muxes);
        muxes_granted = true;
      }
      if (std::find(features.begin(), features.end(), proto::feature_stream_windows) !=
          features.end()) {
        resp.ext->features.emplace_back(proto::feature_stream_windows);
        stream_windows_granted = true;
      }
    }
    resp.ext->features.emplace_back(proto::feature_close_tunnel);
    if (mux_granted && directory_->takes_standby() &&
        std::find(features.begin(), features.end(), proto::feature_standby) != features.end()) {
      resp.ext->features.emplace_back(proto::feature_standby);
    }
    resp.ext->nodes = directory_->other_nodes();
    resp.ext->node = own_tunnel_addr_;
  }
  auto session =
      std::make_shared<control_session>(*this, std::move(stream), std::move(reader), client_id,
                                        pool_size, mux_granted, peer, standby, muxes_granted);
  if (stream_windows_granted) {
    session->allow_stream_windows();
  }
  if (auth->ext) {
    session->set_porthole_client();
  }
  sessions_[client_id] = session;
  if (auto account = account_for(*who)) {
    account->sessions.push_back(session);
    session->set_account(std::move(account));
    tokens_->record_use(*who);
  }
  log::info(standby ? "client standing by" : "client connected",
            {{"client", client_id},
             {"peer", peer},
             {"agent", auth->ext ? "porthole " + auth->ext->version : "ngrok " + auth->mm_version},
             {"os", auth->os},
             {"arch", auth->arch},
             {"protocol", auth->ext ? "porthole" : "base"}});
  co_await session->run(resp);
  if (auto it = sessions_.find(client_id); it != sessions_.end() && it->second.lock() == session) {
    sessions_.erase(it);
  }
  net::spawn(ioc_.get_executor(), forget_client_later(client_id), "client " + client_id);
}

// A client id stays bound to its token while its URLs are held, then is
// forgotten, so the table does not grow with every client ever seen.
asio::awaitable<void> server::forget_client_later(std::string client_id) {
  asio::steady_timer grace(ioc_, cfg_.reconnect_grace);
  co_await grace.async_wait(net::use_nothrow);
  if (!find_session(client_id)) {
    client_tokens_.erase(client_id);
  }
}

std::shared_ptr<control_session> server::find_session(std::string_view client_id) const {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) {
    return nullptr;
  }
  auto s = it->second.lock();
  return s && !s->closed() ? s : nullptr;
}

asio::awaitable<std::vector<proto::new_tunnel>> server::open_tunnels(
    std::shared_ptr<control_session> session, proto::req_tunnel req) {
  if (session->tunnels().size() >= cfg_.max_tunnels_per_client) {
    co_return refused("Too many tunnels: this server allows " +
                      std::to_string(cfg_.max_tunnels_per_client) + " per client.");
  }
  std::vector<std::string> protocols = split_protocols(req.protocol);
  for (const std::string& p : protocols) {
    if (p != "http" && p != "https" && p != "tcp") {
      co_return refused("Unsupported protocol '" + p +
                        "': this server offers http, https and tcp.");
    }
  }
  const bool tcp = std::find(protocols.begin(), protocols.end(), "tcp") != protocols.end();
  if (const auto& account = session->account(); account && !session->standby()) {
    std::string why = tunnel_limit_refusal(account->who(), account->usage(), protocols.size(), tcp);
    if (!why.empty()) {
      co_return refused(std::move(why));
    }
  }
  if (tcp && protocols.size() != 1) {
    co_return refused("Protocol tcp cannot be combined with others in one tunnel.");
  }
  for (const std::string& scheme : protocols) {
    if (scheme != "tcp" && (scheme == "http" ? http_port_ : https_port_) == 0) {
      co_return refused("This server has no public " + scheme + " listener.");
    }
  }
  std::vector<proto::new_tunnel> replies;
  if (session->standby()) {
    replies = co_await open_standby_tunnels(session, req, protocols);
  } else if (tcp) {
    // (A co_await inside a braced list trips g++ 12.)
    proto::new_tunnel reply = co_await open_tcp_tunnel(session, req);
    replies.push_back(std::move(reply));
  } else {
    replies = co_await open_http_tunnels(session, req, protocols);
  }
  co_return replies;
}

claimant server::claimant_of(const control_session& session) const {
  return {session.client_id(), session.account() ? session.account()->who().key : ""};
}

bool server::keep_claimed(control_session& session,
                          const std::vector<std::shared_ptr<tunnel>>& claimed) {
  if (session.closed()) {
    // The session ended while its claim was on the way: the names are held
    // for the client as if they had been up when it left.
    for (const auto& t : claimed) {
      drop_tunnel(*t, hold_until());
    }
    return false;
  }
  auto& mine = session.tunnels();
  for (const auto& t : claimed) {
    std::erase_if(mine, [&](const auto& old) { return old->url == t->url; });
    mine.push_back(t);
  }
  return true;
}

asio::awaitable<std::vector<proto::new_tunnel>> server::open_standby_tunnels(
    std::shared_ptr<control_session> session, proto::req_tunnel req,
    std::vector<std::string> protocols) {
  std::string name;
  std::vector<std::shared_ptr<tunnel>> tunnels;
  std::vector<proto::new_tunnel> replies;
  if (protocols.front() == "tcp") {
    if (req.remote_port == 0) {
      co_return refused("A standby connection names the port of the client's tunnel.");
    }
    name = "tcp://" + cfg_.domain + ":" + std::to_string(req.remote_port);
    tunnels.push_back(
        std::make_shared<tunnel>(tunnel{name, "tcp", "", "", session, session->client_id(), true}));
    replies.push_back({req.req_id, name, "tcp", ""});
  } else {
    if (req.hostname.empty() && req.subdomain.empty()) {
      co_return refused("A standby connection names the host of the client's tunnel.");
    }
    host_choice chosen = req.hostname.empty() ? choose_subdomain(req.subdomain, names_)
                                              : choose_hostname(req.hostname, names_);
    if (!chosen.error.empty()) {
      co_return refused(std::move(chosen.error));
    }
    name = chosen.host;
    for (const std::string& scheme : protocols) {
      const std::string url = make_url(scheme, name, scheme == "http" ? http_port_ : https_port_);
      tunnels.push_back(std::make_shared<tunnel>(
          tunnel{url, scheme, name, req.http_auth, session, session->client_id(), true}));
      tunnels.back()->public_h2 = session->porthole_client();
      replies.push_back({req.req_id, url, scheme, ""});
    }
  }
  const bool ours = co_await directory_->stand_by(name, claimant_of(*session), tunnels);
  if (!ours) {
    co_return refused("Cannot stand by for " + replies.front().url +
                      ": it is not this client's tunnel on another node of the cluster.");
  }
  if (!keep_claimed(*session, tunnels)) {
    co_return std::vector<proto::new_tunnel>{};
  }
  for (const auto& t : tunnels) {
    log::info("tunnel standing by", {{"client", t->client_id}, {"url", t->url}});
  }
  co_return replies;
}

asio::awaitable<bool> server::promote(std::shared_ptr<control_session> session) {
  // One claim per name, with every scheme the client serves on it.
  std::map<std::string, std::vector<std::shared_ptr<tunnel>>> by_name;
  for (const auto& t : session->tunnels()) {
    by_name[t->routing_name()].push_back(t);
  }
  session->set_standby(false);
  for (auto& [name, tunnels] : by_name) {
    for (const auto& t : tunnels) {
      t->standby = false;
    }
    const claim_answer got =
        co_await claim_to_the_end(directory_, name, claimant_of(*session), tunnels);
    if (session->closed()) {
      // It ended while the claim was on its way: the names are held for the
      // client as if they had been up when it left.
      for (const auto& t : tunnels) {
        drop_tunnel(*t, hold_until());
      }
      co_return false;
    }
    if (!got.won()) {
      log::warn(
          "standby connection not promoted: the client's tunnel could not be claimed here",
          {{"client", session->client_id()},
           {"name", name},
           {"error", got.error.empty() ? std::string("taken by another client") : got.error}});
      // The names not claimed are still standing by; they go with the session.
      bool after = false;
      for (auto& [other, rest] : by_name) {
        after = after || other == name;
        for (const auto& t : rest) {
          t->standby = t->standby || after;
        }
      }
      co_return false;
    }
  }
  log::info("standby connection promoted: the client's tunnels are served from this node",
            {{"client", session->client_id()}, {"tunnels", session->tunnels().size()}});
  co_return true;
}

asio::awaitable<std::vector<proto::new_tunnel>> server::open_http_tunnels(
    std::shared_ptr<control_session> session, proto::req_tunnel req,
    std::vector<std::string> protocols) {
  const std::string client_id = session->client_id();
  std::vector<std::string> candidates;
  bool random = false;
  if (!req.hostname.empty() || !req.subdomain.empty()) {
    // Hostname wins over Subdomain, as in ngrokd 1.7.
    host_choice chosen = req.hostname.empty() ? choose_subdomain(req.subdomain, names_)
                                              : choose_hostname(req.hostname, names_);
    if (!chosen.error.empty()) {
      co_return refused(std::move(chosen.error));
    }
    if (std::string why = reserved_refusal(*session, chosen.host); !why.empty()) {
      co_return refused(std::move(why));
    }
    candidates.push_back(std::move(chosen.host));
  } else {
    // A reconnecting client gets back the random name it had for a scheme it asks for.
    for (const auto& held : directory_->held_by(client_id)) {
      const bool same_scheme = std::any_of(protocols.begin(), protocols.end(), [&](const auto& p) {
        return std::find(held.schemes.begin(), held.schemes.end(), p) != held.schemes.end();
      });
      if (same_scheme && held.name.ends_with("." + cfg_.domain) &&
          reserved_refusal(*session, held.name).empty()) {
        candidates.push_back(held.name);
        break;
      }
    }
    random = candidates.empty();
  }

  // A random name that another client took meanwhile is replaced by another.
  constexpr int random_attempts = 16;
  for (int attempt = 0; attempt < random_attempts; ++attempt) {
    std::string host;
    if (random) {
      const std::string label = random_subdomain();
      host = label + "." + cfg_.domain;
      if (!tokens_->reserved_by(label).empty() || !directory_->is_free(host)) {
        continue;
      }
    } else {
      host = candidates.front();
    }
    std::vector<std::shared_ptr<tunnel>> tunnels;
    std::vector<proto::new_tunnel> replies;
    for (const std::string& scheme : protocols) {
      const std::string url = make_url(scheme, host, scheme == "http" ? http_port_ : https_port_);
      tunnels.push_back(
          std::make_shared<tunnel>(tunnel{url, scheme, host, req.http_auth, session, client_id}));
      tunnels.back()->public_h2 = session->porthole_client();
      replies.push_back({req.req_id, url, scheme, ""});
    }
    // A name is one client's in every scheme: one claim decides for all.
    const claim_answer got =
        co_await claim_to_the_end(directory_, host, claimant_of(*session), tunnels);
    if (got.outcome == claim_outcome::unavailable) {
      co_return refused(std::string(proto::registry_unavailable) + " (" + got.error +
                        "); try again shortly.");
    }
    if (!got.won()) {
      if (random) {
        continue;
      }
      co_return refused(taken_message(replies.front().url, got.outcome));
    }
    if (!keep_claimed(*session, tunnels)) {
      co_return std::vector<proto::new_tunnel>{};
    }
    for (const auto& t : tunnels) {
      log::info("tunnel up", {{"client", client_id},
                              {"url", t->url},
                              {"auth", t->http_auth.empty() ? log::field::value_type(log::omitted{})
                                                            : std::string_view("basic")}});
    }
    co_return replies;
  }
  co_return refused("No free random name found; try again.");
}

asio::awaitable<proto::new_tunnel> server::open_tcp_tunnel(std::shared_ptr<control_session> session,
                                                           proto::req_tunnel req) {
  const std::string client_id = session->client_id();
  const bool ranged = cfg_.tcp_port_low != 0;
  std::vector<std::uint16_t> candidates;
  if (req.remote_port != 0) {
    if (ranged && (req.remote_port < cfg_.tcp_port_low || req.remote_port > cfg_.tcp_port_high)) {
      co_return refusal("Remote port " + std::to_string(req.remote_port) +
                        " is outside the range this server allows (" +
                        std::to_string(cfg_.tcp_port_low) + "-" +
                        std::to_string(cfg_.tcp_port_high) + ").");
    }
    if (!ranged && req.remote_port < first_unprivileged_port) {
      co_return refusal("Remote port " + std::to_string(req.remote_port) +
                        " is not one this server gives out: without --tcp-ports it gives ports " +
                        std::to_string(first_unprivileged_port) + "-65535.");
    }
    candidates.push_back(req.remote_port);
  } else {
    // A client that lost its connection (or was started again, resuming its
    // session) gets back the port it had, as it does a random name.
    const std::string prefix = "tcp://" + cfg_.domain + ":";
    for (const auto& held : directory_->held_by(client_id)) {
      std::uint16_t port = 0;
      const std::string& name = held.name;
      const char* end = name.data() + name.size();
      if (name.starts_with(prefix) &&
          std::from_chars(name.data() + prefix.size(), end, port).ptr == end && port != 0) {
        candidates.push_back(port);
      }
    }
    if (ranged) {
      const int span = cfg_.tcp_port_high - cfg_.tcp_port_low + 1;
      const int offset = static_cast<int>(std::random_device{}() % static_cast<unsigned>(span));
      for (int i = 0; i < span; ++i) {
        candidates.push_back(static_cast<std::uint16_t>(cfg_.tcp_port_low + (offset + i) % span));
      }
    } else {
      candidates.push_back(0);
    }
  }

  std::string last_error;
  for (std::uint16_t port : candidates) {
    const auto url_of = [&](std::uint16_t p) {
      return "tcp://" + cfg_.domain + ":" + std::to_string(p);
    };
    // A port with a listener already (a client taking its port back) keeps it.
    std::optional<tcp::acceptor> fresh;
    std::string url = url_of(port);
    if (port == 0 || !tcp_listeners_.contains(url)) {
      bound_port bound = bind_tcp_port(port);
      if (bound.error) {
        // Why the bind failed is the server's business: told apart, "in use"
        // and "permission denied" would map the server's own ports.
        log::debug("tcp port refused",
                   {{"client", client_id}, {"port", port}, {"error", bound.error.message()}});
        last_error = port_unavailable(port);
        continue;
      }
      url = url_of(bound.acceptor.local_endpoint().port());
      fresh.emplace(std::move(bound.acceptor));
    }
    auto t = std::make_shared<tunnel>(tunnel{url, "tcp", "", "", session, client_id});
    std::vector<std::shared_ptr<tunnel>> claimed{t};
    const claim_answer got =
        co_await claim_to_the_end(directory_, url, claimant_of(*session), claimed);
    if (got.outcome == claim_outcome::unavailable) {
      co_return refusal(std::string(proto::registry_unavailable) + " (" + got.error +
                        "); try again shortly.");
    }
    if (!got.won()) {
      log::debug("tcp port refused", {{"client", client_id},
                                      {"url", url},
                                      {"error", got.outcome == claim_outcome::live_elsewhere
                                                    ? "another client's tunnel"
                                                    : "held for another client"}});
      last_error = port_unavailable(port != 0 ? port : fresh->local_endpoint().port());
      continue;
    }
    if (!keep_claimed(*session, claimed)) {
      co_return proto::new_tunnel{};
    }
    if (fresh) {
      auto l = std::make_shared<tcp_listener>(tcp_listener{url, std::move(*fresh)});
      tcp_listeners_[url] = l;
      net::spawn(ioc_.get_executor(), serve_tcp_tunnel(l), "tcp tunnel " + url);
    }
    log::info("tunnel up", {{"client", client_id}, {"url", url}});
    co_return proto::new_tunnel{req.req_id, url, "tcp", ""};
  }
  co_return refusal(last_error);
}

server::bound_port server::bind_tcp_port(std::uint16_t port) {
  bound_port out{tcp::acceptor(ioc_), {}};
  net::tcp::endpoint ep;
  try {
    ep = net::listen_endpoint(net::host_port{cfg_.tcp_bind_addr, std::to_string(port)});
  } catch (const std::exception& e) {
    out.error = asio::error::invalid_argument;
    return out;
  }
  net::error_code& ec = out.error;
  out.acceptor.open(ep.protocol(), ec);
  if (!ec) {
    // The port may still be in use by connections of the tunnel's previous
    // session (a reconnecting client asks for the same port).
    out.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec && ep.address().is_v6() && ep.address().is_unspecified()) {
    out.acceptor.set_option(asio::ip::v6_only(false), ec);
    ec.clear();
  }
  if (!ec) {
    out.acceptor.bind(ep, ec);
  }
  if (!ec) {
    out.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  return out;
}

asio::awaitable<void> server::serve_tcp_tunnel(std::shared_ptr<tcp_listener> l) {
  for (;;) {
    auto [ec, sock] = co_await l->acceptor.async_accept(net::use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !l->acceptor.is_open()) {
        co_return;
      }
      log::warn("accept failed", {{"url", l->url}, {"error", ec.message()}});
      asio::steady_timer pause(ioc_, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_nothrow);
      continue;
    }
    const route to = directory_->find("tcp", l->url);
    net::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (to.local) {
      net::spawn(ioc_.get_executor(), proxy_tcp(to.local, std::move(sock)), l->url);
    } else if (to.remote || to.moving) {
      net::spawn(ioc_.get_executor(), relay_tcp(l->url, std::move(sock)), l->url);
    }
    // Else nobody serves it now: the connection closes.
  }
}

asio::awaitable<void> server::proxy_tcp(std::shared_ptr<tunnel> t, tcp::socket public_conn) {
  active_guard counted(active_);
  public_conn_count in_metrics(metrics_, public_protocol::tcp);
  const std::string peer = peer_of(public_conn);
  std::optional<public_conn_slot> slot;
  if (auto session = t->session.lock()) {
    slot = session->admit_public(peer, t->url);
  }
  if (!slot) {
    co_return;  // refused (logged), or the client is gone: the connection closes
  }
  if (shards_.size() > 1) {
    auto session = t->session.lock();
    if (mux_link via = session ? session->mux() : mux_link{}; via && via.shard != 0) {
      // Relayed on the thread of its stream; what counts it stays here.
      net::move_to(public_conn, via.executor);
      auto counters = shards_[via.shard].counters;
      auto executor = via.executor;
      auto relaying =
          asio::co_spawn(executor,
                         relay_on_shard(std::move(via), t->url, peer, std::move(public_conn),
                                        std::move(counters), cfg_.tcp_idle_timeout),
                         net::on_other_shard());
      co_await std::move(relaying);
      co_return;
    }
  }
  // (Named first: temporaries in a co_await expression trip g++ 12.)
  auto opening =
      start_proxy(t, peer, {}, std::chrono::steady_clock::now() + cfg_.proxy_wait_timeout);
  auto conn = co_await std::move(opening);
  if (conn) {
    byte_counter bytes(metrics_);
    const auto totals =
        co_await net::relay(public_conn, *conn, {}, cfg_.tcp_idle_timeout, false, &bytes);
    log::debug("public connection closed", {{"url", t->url},
                                            {"peer", peer},
                                            {"bytes_in", totals.near_to_tunnel},
                                            {"bytes_out", totals.tunnel_to_near}});
    co_return;
  }
  metrics_->count(error_kind::proxy_timeout);
  log::warn("no proxy connection from the client in time; dropping the public connection",
            {{"url", t->url}, {"peer", peer}});
}

// A TCP tunnel's public connection on the shard of its stream's multiplexed
// connection: it touches only that shard's state.
asio::awaitable<void> server::relay_on_shard(mux_link via, std::string url, std::string peer,
                                             tcp::socket public_conn,
                                             std::shared_ptr<metrics> counters,
                                             std::chrono::seconds idle_timeout) {
  // (Named first: temporaries in a co_await expression trip g++ 12.)
  auto opening = open_stream(std::move(via), url, peer, {}, counters);
  auto conn = co_await std::move(opening);
  if (!conn) {
    counters->count(error_kind::proxy_timeout);
    log::warn("the client's multiplexed connection is gone; dropping the public connection",
              {{"url", url}, {"peer", peer}});
    co_return;
  }
  byte_counter bytes(counters);
  const auto totals = co_await net::relay(public_conn, *conn, {}, idle_timeout, false, &bytes);
  log::debug("public connection closed", {{"url", url},
                                          {"peer", peer},
                                          {"bytes_in", totals.near_to_tunnel},
                                          {"bytes_out", totals.tunnel_to_near}});
}

// A stopping node of a cluster holds its clients' names for them while they
// move to another node; a single node has nowhere for them to go.
directory::clock::time_point server::hold_until() const {
  const bool gone = stopping_ && !cfg_.cluster.enabled();
  return gone ? now_() : now_() + cfg_.reconnect_grace;
}

void server::drop_tunnel(const tunnel& t, directory::clock::time_point hold_until) {
  if (t.protocol == "tcp" && !t.standby && directory_->find("tcp", t.url).local.get() == &t) {
    if (auto it = tcp_listeners_.find(t.url); it != tcp_listeners_.end()) {
      net::error_code ignored;
      it->second->acceptor.close(ignored);
      tcp_listeners_.erase(it);
    }
  }
  directory_->release(t, hold_until);
  log::info("tunnel down", {{"client", t.client_id}, {"url", t.url}});
}

void server::close_tunnels(control_session& session) {
  const auto until = hold_until();
  for (const auto& t : session.tunnels()) {
    drop_tunnel(*t, until);
  }
  session.tunnels().clear();
}

void server::close_tunnel(control_session& session, std::string_view url) {
  auto& mine = session.tunnels();
  auto it = std::find_if(mine.begin(), mine.end(), [&](const auto& t) { return t->url == url; });
  if (it == mine.end()) {
    log::debug("CloseTunnel for a tunnel the client does not have; ignored",
               {{"client", session.client_id()}, {"url", url}});
    return;
  }
  const std::shared_ptr<tunnel> t = *it;
  mine.erase(it);
  drop_tunnel(*t, now_());
}

listener_addresses server::listening_addresses() const {
  listener_addresses out;
  for (const auto& l : listeners_) {
    net::error_code ec;
    const tcp::endpoint ep = l->acceptor.local_endpoint(ec);
    if (ec) {
      continue;  // closed by stop()
    }
    switch (l->what) {
      case listener::kind::tunnel_and_https:
        out.tunnel = ep;
        out.https = ep;
        break;
      case listener::kind::tunnel:
        out.tunnel = ep;
        break;
      case listener::kind::https:
        out.https = ep;
        break;
      case listener::kind::http:
        out.http = ep;
        break;
      case listener::kind::node:
        out.node = ep;
        break;
    }
  }
  out.admin = admin_endpoint_address();
  return out;
}

// ---- the cluster ----

void server::join_cluster() {
  // The directory learns where this node listens, then joins (etcd: a lease,
  // the node's registration, every name). Nothing is accepted before: a
  // claim needs the lease. A failure ends start() with its message.
  // Clients are told the other nodes' tunnel listeners; one bound to all
  // interfaces names none of them (such clients find nodes through DNS).
  std::string tunnel_addr;
  if (!listeners_.empty()) {
    const tcp::endpoint ep = listeners_.front()->acceptor.local_endpoint();
    if (!ep.address().is_unspecified()) {
      tunnel_addr = net::to_string(ep);
    }
  }
  own_tunnel_addr_ = tunnel_addr;
  node_addresses here{cfg_.cluster.node_id, node_addr_, tunnel_addr};
  // Shared with the handler: should the loop below end first, the handler
  // still writes to something alive.
  struct outcome {
    std::exception_ptr failed;
    bool done = false;
  };
  auto joined = std::make_shared<outcome>();
  asio::co_spawn(ioc_, directory_->join(here), [joined](std::exception_ptr e) {
    joined->failed = e;
    joined->done = true;
  });
  while (!joined->done && ioc_.run_one() > 0) {
  }
  ioc_.restart();
  if (joined->failed) {
    std::rethrow_exception(joined->failed);
  }
  if (!joined->done) {
    throw std::runtime_error("joining the cluster did not finish");
  }
  directory_->on_names_lost = [this](std::string_view why) {
    // Every client of this node may have lost its URLs to another node: they
    // reconnect and claim them again (through this node or another).
    std::vector<std::shared_ptr<control_session>> live;
    for (auto& [id, weak] : sessions_) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
    log::warn("closing every client's control connection so they claim their URLs again",
              {{"clients", live.size()}, {"reason", why}});
    for (auto& s : live) {
      s->close();
    }
  };
  directory_->on_tcp_names_changed = [this] { tcp_names_changed_.notify(); };
  net::spawn(ioc_.get_executor(), follow_tcp_names(), "cluster tcp ports");
}

// Every node listens on every TCP tunnel's port of the cluster, so a public
// connection to any node reaches the tunnel.
asio::awaitable<void> server::follow_tcp_names() {
  while (!stopping_) {
    for (const std::string& url : directory_->tcp_names()) {
      if (tcp_listeners_.contains(url)) {
        continue;
      }
      const auto colon = url.rfind(':');
      std::uint16_t port = 0;
      std::from_chars(url.data() + colon + 1, url.data() + url.size(), port);
      if (port == 0 || !url.starts_with("tcp://" + cfg_.domain + ":")) {
        continue;
      }
      bound_port bound = bind_tcp_port(port);
      if (bound.error) {
        // Said once per port, not at every pass: it is tried again each time.
        if (unbindable_tcp_names_.insert(url).second) {
          log::warn(
              "cannot listen on another node's tcp tunnel port here; connections to it "
              "through this node fail",
              {{"url", url}, {"error", bound.error.message()}});
        }
        continue;
      }
      unbindable_tcp_names_.erase(url);
      auto l = std::make_shared<tcp_listener>(tcp_listener{url, std::move(bound.acceptor)});
      tcp_listeners_[url] = l;
      net::spawn(ioc_.get_executor(), serve_tcp_tunnel(l), "tcp tunnel " + url);
    }
    std::vector<std::string> gone;
    const auto names = directory_->tcp_names();
    for (const auto& [url, l] : tcp_listeners_) {
      if (std::find(names.begin(), names.end(), url) == names.end()) {
        gone.push_back(url);
      }
    }
    for (const auto& url : gone) {
      net::error_code ignored;
      tcp_listeners_[url]->acceptor.close(ignored);
      tcp_listeners_.erase(url);
    }
    co_await tcp_names_changed_.wait_until(std::chrono::steady_clock::now() +
                                           std::chrono::seconds(1));
  }
}

asio::awaitable<void> server::serve_node(tcp::socket sock) {
  active_guard counted(active_);
  const std::string peer = peer_of(sock);
  auto stream = std::make_unique<net::tls_stream>(std::move(sock), *node_server_tls_);
  asio::steady_timer timer(ioc_, cfg_.tls_handshake_timeout);
  auto shaken =
      co_await (stream->async_handshake(asio::ssl::stream_base::server, net::use_nothrow) ||
                timer.async_wait(net::use_nothrow));
  if (shaken.index() == 1 || std::get<0>(std::get<0>(shaken))) {
    metrics_->count(error_kind::tls_handshake);
    log::warn("node connection refused: no TLS handshake with a certificate of the cluster CA",
              {{"peer", peer}});
    net::close_stream(*stream);
    co_return;
  }
  timer.expires_after(cfg_.first_message_timeout);
  auto first = co_await (read_node_message(*stream) || timer.async_wait(net::use_nothrow));
  if (first.index() == 1) {
    net::close_stream(*stream);
    co_return;
  }
  auto [ec, text] = std::get<0>(std::move(first));
  const auto req = ec ? std::nullopt : decode_relay_request(text);
  if (!req) {
    log::warn("node connection refused: bad relay request", {{"peer", peer}});
    net::close_stream(*stream);
    co_return;
  }
  // The fencing check: the relaying node saw this node's claim at this
  // revision; anything else (claimed again since, moved, gone) is refused,
  // and the relaying node asks etcd again.
  const route here = directory_->find(req->scheme, req->name);
  if (!here.local || here.revision != req->revision) {
    ++metrics_->relays_refused;
    log::info("relay refused: not this node's claim at that revision",
              {{"name", req->name},
               {"from_node", req->from_node},
               {"revision", req->revision},
               {"current", here.local ? here.revision : std::int64_t{0}}});
    std::string refusal_text = encode(relay_answer{"not served here", true});
    co_await write_node_message(*stream, std::move(refusal_text));
    net::close_stream(*stream);
    co_return;
  }
  std::string accepted = encode(relay_answer{"", false});
  const net::error_code answered = co_await write_node_message(*stream, std::move(accepted));
  if (answered) {
    co_return;
  }
  ++metrics_->relays_in;
  log::debug("relayed connection accepted",
             {{"name", req->name}, {"scheme", req->scheme}, {"from_node", req->from_node}});
  if (req->scheme == "tcp") {
    co_await proxy_relayed_tcp(here.local, std::move(stream), req->client_ip);
    co_return;
  }
  public_conn_count in_metrics(metrics_, protocol_of(req->scheme));
  // Its client's address is the one the other node read (without a port).
  public_peer from{req->client_ip, req->client_ip};
  co_await serve_public_http(*this, std::move(stream), req->scheme, std::move(from),
                             /*relayed=*/true);
}

// A public TCP connection for a tunnel of another node: handed to that node,
// asking the directory again while the client moves (as for HTTP).
asio::awaitable<void> server::relay_tcp(std::string url, tcp::socket public_conn) {
  active_guard counted(active_);
  public_conn_count in_metrics(metrics_, public_protocol::tcp);
  const std::string ip = ip_of(public_conn);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  asio::steady_timer pause(ioc_);
  for (route to = directory_->find("tcp", url); to.remote || to.local || to.moving;
       to = directory_->find("tcp", url)) {
    if (to.local) {
      co_await proxy_tcp(to.local, std::move(public_conn));
      co_return;
    }
    if (!to.remote) {
      // Its client is moving to another node: wait for it, as when a relay fails.
      if (std::chrono::steady_clock::now() >= give_up) {
        co_return;
      }
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_nothrow);
      continue;
    }
    relay_request req{url, "tcp", to.remote->revision, ip, ""};
    relay_result r = co_await open_relay(*to.remote, std::move(req));
    if (r.stream) {
      net::tls_channel to_node(std::move(r.stream));
      byte_counter bytes(metrics_, true);
      co_await net::relay(public_conn, to_node, {}, cfg_.tcp_idle_timeout, false, &bytes);
      co_return;
    }
    if (!r.retry || std::chrono::steady_clock::now() >= give_up) {
      metrics_->count(error_kind::relay_failed);
      log::warn("cannot hand a public connection to the node that serves it",
                {{"url", url}, {"node", to.remote->node_id}, {"error", r.error}});
      co_return;
    }
    pause.expires_after(std::chrono::milliseconds(100));
    co_await pause.async_wait(net::use_nothrow);
  }
}

asio::awaitable<void> server::proxy_relayed_tcp(std::shared_ptr<tunnel> t,
                                                std::unique_ptr<net::tls_stream> conn,
                                                std::string client_ip) {
  public_conn_count in_metrics(metrics_, public_protocol::tcp);
  std::optional<public_conn_slot> slot;
  if (auto session = t->session.lock()) {
    slot = session->admit_public(client_ip, t->url);
  }
  if (!slot) {
    net::close_stream(*conn);
    co_return;
  }
  // (Named first: temporaries in a co_await expression trip g++ 12.)
  auto opening =
      start_proxy(t, client_ip, {}, std::chrono::steady_clock::now() + cfg_.proxy_wait_timeout);
  auto to_client = co_await std::move(opening);
  if (!to_client) {
    metrics_->count(error_kind::proxy_timeout);
    net::close_stream(*conn);
    co_return;
  }
  net::tls_channel near(std::move(conn));
  byte_counter bytes(metrics_);
  co_await net::relay(near, *to_client, {}, cfg_.tcp_idle_timeout, false, &bytes);
}

asio::awaitable<server::relay_result> server::open_relay(remote_owner owner, relay_request req) {
  relay_result out;
  req.from_node = cfg_.cluster.node_id;
  const auto where = net::split_host_port(owner.node_addr);
  auto dialed = co_await net::dial(where.host, where.port, std::nullopt, std::chrono::seconds(3));
  if (dialed.error) {
    out.error = "cannot reach node " + owner.node_id + " (" + owner.node_addr +
                "): " + dialed.error.message();
    out.retry = true;
    co_return out;
  }
  dialed.socket.set_option(tcp::no_delay(true));
  auto stream = std::make_unique<net::tls_stream>(std::move(dialed.socket), *node_client_tls_);
  // The last session with that node, resumed: no certificates to sign and
  // check on every relayed connection.
  node_sessions_->prepare(stream->native_handle(), owner.node_addr);
  asio::steady_timer timer(ioc_, std::chrono::seconds(3));
  auto shaken =
      co_await (stream->async_handshake(asio::ssl::stream_base::client, net::use_nothrow) ||
                timer.async_wait(net::use_nothrow));
  if (shaken.index() == 1 || std::get<0>(std::get<0>(shaken))) {
    out.error = "no TLS handshake with node " + owner.node_id;
    out.retry = true;
    co_return out;
  }
  req.revision = owner.revision;
  const net::error_code sent = co_await write_node_message(*stream, encode(req));
  if (sent) {
    out.error = "node " + owner.node_id + " closed the relay: " + sent.message();
    out.retry = true;
    co_return out;
  }
  timer.expires_after(std::chrono::seconds(3));
  auto answer = co_await (read_node_message(*stream) || timer.async_wait(net::use_nothrow));
  if (answer.index() == 1 || std::get<0>(std::get<0>(answer))) {
    out.error = "node " + owner.node_id + " did not answer the relay";
    out.retry = true;
    co_return out;
  }
  const auto said = decode_relay_answer(std::get<1>(std::get<0>(answer)));
  if (!said || !said->error.empty()) {
    ++metrics_->relays_refused;
    out.error = "node " + owner.node_id +
                " refused the relay: " + (said ? said->error : std::string("bad answer"));
    out.retry = said && said->stale;
    co_return out;
  }
  ++metrics_->relays_out;
  log::debug("public connection handed to another node",
             {{"name", req.name},
              {"node", owner.node_id},
              {"tls_resumed", SSL_session_reused(stream->native_handle()) == 1}});
  out.stream = std::move(stream);
  co_return out;
}

}  // namespace porthole::server
