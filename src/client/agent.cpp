#include "client/agent.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/utsname.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

#include "http/forwarding.h"
#include "mux/session.h"
#include "net/address.h"
#include "net/frame_io.h"
#include "net/relay.h"
#include "net/spawn.h"
#include "net/tls.h"

namespace porthole::client {

namespace asio = net::asio;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

namespace {

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

bool is_verify_failure(const net::error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() &&
         ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED;
}

}  // namespace

/// One live control connection.
struct agent::session {
  std::unique_ptr<net::tls_stream> stream;
  net::frame_reader reader;
  clock::time_point last_pong = clock::now();
  std::map<std::string, std::size_t> by_req_id;  ///< ReqId -> index of the tunnel asked for
  bool was_up = false;                           ///< a tunnel came up on this connection
  std::optional<agent_result> fatal;             ///< why the client must stop, if it must
  bool mux_granted = false;                      ///< the server speaks the "mux" extension
  std::shared_ptr<mux::session> mux;             ///< the multiplexed connection, while up
};

agent::agent(asio::io_context& ioc, client_config cfg)
    : ioc_(ioc), cfg_(std::move(cfg)), tls_(net::make_client_tls(cfg_.trust_ca)) {
  SSL_CTX* ctx = tls_.native_handle();
  SSL_CTX_set_app_data(ctx, this);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &agent::on_new_session);
  const auto hp = net::split_host_port(cfg_.server_addr, "443");
  server_host_ = hp.host;
  server_port_ = hp.port;
}

agent::~agent() = default;

void agent::stop() {
  stopped_ = true;
  stopping_.notify();
  if (current_ != nullptr) {
    net::close_stream(*current_->stream);
  }
}

asio::awaitable<agent_result> agent::run() {
  auto delay = cfg_.reconnect_min;
  for (;;) {
    bool was_up = false;
    const std::optional<agent_result> fatal = co_await serve_once(was_up);
    if (fatal) {
      co_return *fatal;
    }
    if (stopped_) {
      co_return agent_result{};
    }
    if (was_up) {
      delay = cfg_.reconnect_min;
    }
    spdlog::info("reconnecting in {}s", delay.count());
    co_await stopping_.wait_until(clock::now() + delay);
    if (stopped_) {
      co_return agent_result{};
    }
    delay = std::min(delay * 2, cfg_.reconnect_max);
  }
}

// Says why when it fails, except for a certificate that does not verify:
// that ends the client, and the caller says so.
asio::awaitable<std::tuple<net::error_code, std::unique_ptr<net::tls_stream>>> agent::connect() {
  const std::string server = server_host_ + ":" + server_port_;
  auto [ec, sock, failure] =
      co_await net::dial(server_host_, server_port_, cfg_.proxy, cfg_.dial_timeout);
  if (ec) {
    if (!stopped_) {
      spdlog::warn("cannot reach server {}: {}", server, failure);
    }
    co_return std::tuple{ec, nullptr};
  }
  auto stream = std::make_unique<net::tls_stream>(std::move(sock), tls_);
  net::verify_host(stream->native_handle(), server_host_);
  if (tls_session_) {
    SSL_set_session(stream->native_handle(), tls_session_.get());
  }
  asio::steady_timer timer(ioc_, cfg_.dial_timeout);
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
  auto* self = static_cast<agent*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) {
    self->tls_session_.reset(copy, &SSL_SESSION_free);
  }
  return 0;  // OpenSSL keeps ownership of `session`
}

asio::awaitable<std::optional<agent_result>> agent::serve_once(bool& was_up) {
  const std::string server = server_host_ + ":" + server_port_;
  auto [ec, stream] = co_await connect();
  if (ec) {
    if (is_verify_failure(ec)) {
      co_return agent_result{1, "the TLS certificate of " + server + " is not trusted (" +
                                    ec.message() +
                                    "); give the server's CA certificate with --trust-ca FILE"};
    }
    co_return std::nullopt;  // connect() said why; run() tries again after its backoff
  }
  session s{std::move(stream), net::frame_reader{}};

  proto::auth auth;
  auth.user = cfg_.authtoken;
  auth.os = "linux";
  auth.arch = go_arch();
  auth.client_id = client_id_;
  auth.ext = proto::extensions{PORTHOLE_VERSION, cfg_.pool_size, {}};
  if (cfg_.mux) {
    auth.ext->features.emplace_back(proto::feature_mux);
  }
  std::string auth_frame = proto::encode_framed(auth);
  const net::error_code auth_ec = co_await net::write_message(*s.stream, std::move(auth_frame));
  if (auth_ec) {
    spdlog::warn("lost connection to server {}: {}", server, auth_ec.message());
    co_return std::nullopt;
  }
  asio::steady_timer timer(ioc_, cfg_.auth_timeout);
  auto first = co_await (s.reader.read(*s.stream) || timer.async_wait(net::use_nothrow));
  if (first.index() == 1) {
    spdlog::warn("server {} did not answer Auth within {}s", server, cfg_.auth_timeout.count());
    co_return std::nullopt;
  }
  auto [rec, msg] = std::get<0>(std::move(first));
  auto* resp = std::get_if<proto::auth_resp>(&msg);
  if (rec || !resp) {
    spdlog::warn(
        "lost connection to server {}: {}", server,
        rec ? rec.message() : "expected AuthResp, got " + std::string(proto::type_name(msg)));
    co_return std::nullopt;
  }
  if (!resp->error.empty()) {
    co_return agent_result{1, "the server refused the client: " + resp->error};
  }
  client_id_ = resp->client_id;
  if (resp->ext) {
    const auto& f = resp->ext->features;
    s.mux_granted = cfg_.mux && std::find(f.begin(), f.end(), proto::feature_mux) != f.end();
  }
  spdlog::info("connected to server {} as client {}{}", server, client_id_,
               !resp->ext      ? " (ngrok 1.x protocol)"
               : s.mux_granted ? " (porthole " + resp->ext->version + ", multiplexed)"
                               : " (porthole " + resp->ext->version + ")");

  // Ask for every tunnel at once, as the protocol allows.
  std::string requests;
  for (std::size_t i = 0; i < cfg_.tunnels.size(); ++i) {
    const tunnel_spec& t = cfg_.tunnels[i];
    proto::req_tunnel req{random_req_id(), t.protocol,  t.hostname,
                          t.subdomain,     t.http_auth, t.remote_port};
    s.by_req_id[req.req_id] = i;
    requests += proto::encode_framed(req);
  }
  auto [wec, written] =
      co_await asio::async_write(*s.stream, asio::buffer(requests), net::use_nothrow);
  if (wec) {
    spdlog::warn("lost connection to server {}: {}", server, wec.message());
    co_return std::nullopt;
  }

  current_ = &s;
  co_await (read_loop(s) || ping_loop(s) || mux_loop(s));
  if (s.mux) {
    s.mux->close();
  }
  current_ = nullptr;
  net::close_stream(*s.stream);
  was_up = s.was_up;
  co_return s.fatal;
}

asio::awaitable<void> agent::read_loop(session& s) {
  const std::string server = server_host_ + ":" + server_port_;
  for (;;) {
    auto [ec, msg] = co_await s.reader.read(*s.stream);
    if (ec) {
      if (!stopped_) {
        spdlog::warn("lost connection to server {}: {}", server, ec.message());
      }
      co_return;
    }
    if (auto* nt = std::get_if<proto::new_tunnel>(&msg)) {
      if (!nt->error.empty()) {
        s.fatal = agent_result{1, "the server refused a tunnel: " + nt->error};
        co_return;
      }
      auto it = s.by_req_id.find(nt->req_id);
      if (it == s.by_req_id.end()) {
        spdlog::warn("server sent NewTunnel for unknown request {}; ignored", nt->req_id);
        continue;
      }
      tunnel_spec& t = cfg_.tunnels[it->second];
      url_to_tunnel_[nt->url] = it->second;
      if (t.protocol == "tcp" && t.remote_port == 0) {
        // Ask for the same port after a reconnect.
        const std::string_view url = nt->url;
        std::uint16_t port = 0;
        const auto colon = url.rfind(':');
        if (colon != std::string_view::npos &&
            std::from_chars(url.data() + colon + 1, url.data() + url.size(), port).ec ==
                std::errc{}) {
          t.remote_port = port;
        }
      }
      s.was_up = true;
      spdlog::info("tunnel up: {} -> {}", nt->url, t.local_addr());
    } else if (std::holds_alternative<proto::req_proxy>(msg)) {
      net::spawn(ioc_.get_executor(), proxy_connection(), "proxy connection");
    } else if (std::holds_alternative<proto::pong>(msg)) {
      s.last_pong = clock::now();
    } else {
      spdlog::debug("ignoring {} from the server", proto::type_name(msg));
    }
  }
}

// The multiplexed connection, kept up while the control connection lives. If
// it cannot be had, the server falls back to asking for proxy connections.
asio::awaitable<void> agent::mux_loop(session& s) {
  while (s.mux_granted && !stopped_) {
    auto [ec, conn] = co_await connect();
    const bool connect_said_why = ec && !is_verify_failure(ec);
    if (!ec) {
      std::string reg = proto::encode_framed(proto::reg_mux{client_id_});
      ec = co_await net::write_message(*conn, std::move(reg));
    }
    if (!ec) {
      auto m = std::make_shared<mux::session>(std::move(conn), mux::session::role::client);
      m->on_open = [this](std::unique_ptr<mux::stream> st, proto::start_proxy info) {
        net::spawn(ioc_.get_executor(), serve_stream(std::move(st), std::move(info)), "stream");
      };
      s.mux = m;
      spdlog::debug("multiplexed connection up");
      co_await m->run();
      s.mux.reset();
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

asio::awaitable<void> agent::serve_stream(std::unique_ptr<mux::stream> st,
                                          proto::start_proxy info) {
  const tunnel_spec* t = find_tunnel(info.url);
  if (!t) {
    spdlog::warn("server opened a stream for unknown tunnel {}; closing it", info.url);
    co_return;
  }
  const tunnel_spec spec = *t;
  co_await serve_proxied(*st, spec, info);
}

asio::awaitable<void> agent::serve_proxied(net::channel& tunnel, tunnel_spec spec,
                                           proto::start_proxy info, std::string initial) {
  spdlog::debug("{}: connection from {}", info.url, info.client_addr);
  auto [dec, local, failure] =
      co_await net::dial(spec.local_host, spec.local_port, std::nullopt, cfg_.local_dial_timeout);
  if (dec) {
    spdlog::warn("{}: cannot reach the local service at {}: {}", info.url, spec.local_addr(),
                 failure);
    if (spec.is_http()) {
      const std::string page = http::error_response(
          502, "Bad Gateway",
          "porthole could not reach the local service at " + spec.local_addr() + ": " + failure,
          false);
      co_await tunnel.write(asio::buffer(page));
      tunnel.shutdown_send();
    }
    tunnel.close();
    co_return;
  }
  co_await net::relay(local, tunnel, std::move(initial), cfg_.tcp_idle_timeout, true);
}

asio::awaitable<void> agent::ping_loop(session& s) {
  const std::string ping_frame = proto::encode_framed(proto::ping{});
  // Pings go out every interval, however long each Pong took.
  auto next = clock::now() + cfg_.ping_interval;
  for (;;) {
    const bool stop = co_await stopping_.wait_until(next);
    if (stop) {
      co_return;
    }
    const auto sent = clock::now();
    next = sent + cfg_.ping_interval;
    const net::error_code ec = co_await net::write_message(*s.stream, ping_frame);
    if (ec) {
      co_return;
    }
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

const tunnel_spec* agent::find_tunnel(const std::string& url) const {
  auto it = url_to_tunnel_.find(url);
  return it == url_to_tunnel_.end() ? nullptr : &cfg_.tunnels[it->second];
}

asio::awaitable<void> agent::proxy_connection() {
  auto [ec, stream] = co_await connect();
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
  const tunnel_spec* t = find_tunnel(start->url);
  if (!t) {
    spdlog::warn("server started a connection for unknown tunnel {}; closing it", start->url);
    net::close_stream(*stream);
    co_return;
  }
  // Copied: the tunnel list may change while this connection lives.
  const tunnel_spec spec = *t;
  net::tls_channel tunnel(std::move(stream));
  co_await serve_proxied(tunnel, spec, *start, reader.take_buffered());
}

}  // namespace porthole::client
