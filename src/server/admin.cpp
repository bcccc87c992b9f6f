#include "server/admin.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <map>
#include <optional>

#include "log/event.h"
#include "net/address.h"
#include "net/spawn.h"

namespace porthole::server {

namespace asio = net::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using net::tcp;

namespace {
// A scraper or a health check needs one connection, two at most.
constexpr std::size_t max_connections = 16;
constexpr std::uint32_t header_limit = 8 * 1024;
constexpr std::uint64_t body_limit = 4 * 1024;
// A read or write that takes longer ends the connection, idle keep-alive included.
constexpr auto io_timeout = std::chrono::seconds(10);
}  // namespace

struct admin_endpoint::state : std::enable_shared_from_this<state> {
  asio::any_io_executor ex;
  std::string addr;
  handlers h;
  std::optional<tcp::acceptor> acceptor;
  tcp::endpoint bound;
  std::map<std::uint64_t, beast::tcp_stream*> open;
  std::uint64_t next_id = 1;
  bool stopped = false;

  asio::awaitable<http::response<http::string_body>> answer(
      const http::request<http::string_body>& req) {
    http::response<http::string_body> res;
    res.version(11);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics" && path != "/healthz") {
      res.result(http::status::not_found);
      res.body() = "not found: this endpoint serves /metrics and /healthz\n";
    } else if (req.method() != http::verb::get) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET");
      res.body() = "method not allowed: use GET\n";
    } else if (path == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = co_await h.metrics();
    } else {
      auto [ok, text] = h.health();
      res.result(ok ? http::status::ok : http::status::service_unavailable);
      res.body() = std::move(text);
    }
    co_return res;
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<state> self) {
    for (;;) {
      auto [ec, sock] = co_await self->acceptor->async_accept(net::use_nothrow);
      if (self->stopped) {
        co_return;
      }
      if (ec) {
        if (ec == asio::error::operation_aborted) {
          co_return;
        }
        log::warn("admin endpoint: accept failed", {{"error", ec.message()}});
        asio::steady_timer pause(self->ex, std::chrono::milliseconds(100));
        co_await pause.async_wait(net::use_nothrow);
        continue;
      }
      if (self->open.size() >= max_connections) {
        net::error_code ignored;
        sock.close(ignored);
        continue;
      }
      net::spawn(self->ex, serve(self, std::move(sock)), "admin connection");
    }
  }

  // A connection's entry in `open`, for as long as its stream lives: also when
  // its coroutine is destroyed unfinished (a shutdown destroys what did not
  // drain), before the endpoint's stop() reads the map.
  struct registration {
    state& s;
    std::uint64_t id;
    registration(state& st, beast::tcp_stream& stream) : s(st), id(st.next_id++) {
      s.open[id] = &stream;
    }
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;
    ~registration() { s.open.erase(id); }
  };

  static asio::awaitable<void> serve(std::shared_ptr<state> self, tcp::socket sock) {
    beast::tcp_stream stream(std::move(sock));
    const registration listed(*self, stream);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(header_limit);
      parser.body_limit(body_limit);
      stream.expires_after(io_timeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, net::use_nothrow);
      if (ec) {
        if (ec == http::error::header_limit || ec == http::error::body_limit ||
            ec.category() == http::make_error_code(http::error::bad_target).category()) {
          http::response<http::string_body> res{http::status::bad_request, 11};
          res.set(http::field::content_type, "text/plain; charset=utf-8");
          res.body() = "bad request: " + ec.message() + "\n";
          res.keep_alive(false);
          res.prepare_payload();
          stream.expires_after(io_timeout);
          co_await http::async_write(stream, res, net::use_nothrow);
        }
        break;
      }
      const auto& req = parser.get();
      http::response<http::string_body> res = co_await self->answer(req);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      stream.expires_after(io_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, net::use_nothrow);
      if (wec || !res.keep_alive()) {
        break;
      }
    }
    net::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }
};

admin_endpoint::admin_endpoint(asio::any_io_executor ex, std::string addr, handlers h)
    : state_(std::make_shared<state>()) {
  state_->ex = std::move(ex);
  state_->addr = std::move(addr);
  state_->h = std::move(h);
}

admin_endpoint::~admin_endpoint() {
  stop();
}

void admin_endpoint::start() {
  const tcp::endpoint ep = net::listen_endpoint(net::split_host_port(state_->addr));
  state_->acceptor.emplace(net::bind_acceptor(state_->ex, ep, "the admin endpoint"));
  state_->bound = state_->acceptor->local_endpoint();
  const std::string where = net::to_string(state_->bound);
  log::info("listening for admin", {{"addr", where}, {"paths", "/metrics /healthz"}});
  if (!state_->bound.address().is_loopback()) {
    log::warn(
        "admin endpoint not on loopback: whoever can reach this address can read the server's "
        "metrics (clients, tunnels, traffic); give --admin-addr 127.0.0.1:PORT, or firewall it",
        {{"addr", where}});
  }
  net::spawn(state_->ex, state::accept_loop(state_), "admin endpoint listener");
}

void admin_endpoint::stop() {
  state& s = *state_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  net::error_code ignored;
  if (s.acceptor) {
    s.acceptor->close(ignored);
  }
  for (auto& [id, stream] : s.open) {
    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream->socket().close(ignored);
  }
}

tcp::endpoint admin_endpoint::endpoint() const {
  return state_->bound;
}

}  // namespace porthole::server
