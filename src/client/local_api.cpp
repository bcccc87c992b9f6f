#include "client/local_api.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <deque>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <unordered_set>

#include "http/ascii.h"
#include "http/form.h"
#include "net/address.h"
#include "net/event.h"
#include "net/spawn.h"

namespace porthole::client {

namespace asio = net::asio;
namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
using net::error_code;
using net::tcp;
using clock = std::chrono::steady_clock;

namespace {

// A connection closed with part of a request unread reads and discards what
// the client still sends, for at most this long, so that the client sees our
// answer rather than a reset.
constexpr auto linger_time = std::chrono::seconds(2);
// Read-buffer room beyond the header limit, for what a client pipelines.
constexpr std::size_t read_buffer_room = 16 * 1024;
constexpr std::string_view event_stream_head =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Connection: close\r\n"
    "\r\n";
constexpr std::string_view event_heartbeat = ": keep-alive\n\n";

using request_parser = beast_http::request_parser<beast_http::string_body>;
using request_head = beast_http::request_header<>;
using response_message = beast_http::response<beast_http::string_body>;

struct route {
  std::string path;
  bool prefix = false;
  beast_http::verb method = beast_http::verb::get;
  local_api::handler fn;  // empty for an event stream and an async route
  bool events = false;
  local_api::async_handler async_fn;  // set for an async route
};

struct connection {
  explicit connection(tcp::socket s) : stream(std::move(s)) {}

  beast::tcp_stream stream;
  std::string peer;
  bool closing = false;  // stop() or a slow event stream: end at the next resumption
  bool streams_events = false;
  std::deque<std::string> events;  // formatted, not yet written; at most event_backlog
  net::event wake;                 // an event was queued, or closing was set
};

std::string_view view(beast::string_view s) {
  return {s.data(), s.size()};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = http::ascii_lower(c);
  }
  return out;
}

// True if a Host header value names the address this server listens on: one
// of the loopback names, or the configured host, with the bound port. A web
// page that reaches us by DNS rebinding sends its own name and is refused.
bool is_own_host(std::string_view value, const tcp::endpoint& bound,
                 std::string_view configured_host) {
  std::string_view host = value;
  std::string_view port = "80";
  if (value.starts_with('[')) {
    const auto close = value.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    host = value.substr(1, close - 1);
    const auto rest = value.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) {
        return false;
      }
      port = rest.substr(1);
    }
  } else if (const auto colon = value.find(':'); colon != std::string_view::npos) {
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  }
  if (port != std::to_string(bound.port())) {
    return false;
  }
  const std::string h = lower(host);
  if (h == "127.0.0.1" || h == "localhost" || h == "::1" ||
      (!configured_host.empty() && h == configured_host)) {
    return true;
  }
  // Listening on every interface, the server is also reached by the
  // machine's other addresses; an IP literal is never a rebound name.
  if (bound.address().is_unspecified()) {
    error_code ec;
    asio::ip::make_address(h, ec);
    return !ec;
  }
  return false;
}

// The routes of the most specific pattern matching `path`: an exact path
// beats any prefix, a longer prefix a shorter one.
std::vector<const route*> routes_for(const std::vector<route>& routes, std::string_view path) {
  std::vector<const route*> best;
  std::size_t best_score = 0;
  for (const route& r : routes) {
    std::size_t score = 0;
    if (!r.prefix && r.path == path) {
      score = std::numeric_limits<std::size_t>::max();
    } else if (r.prefix && path.starts_with(r.path)) {
      score = r.path.size();
    } else {
      continue;
    }
    if (score > best_score) {
      best.clear();
      best_score = score;
    }
    if (score == best_score) {
      best.push_back(&r);
    }
  }
  return best;
}

// "event: NAME\ndata: LINE\n...\n": each line of the data gets its own
// "data:" field, as the event-stream format requires.
std::string format_event(std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 16);
  if (!event.empty()) {
    out += "event: ";
    for (char c : event) {
      if (c != '\r' && c != '\n') {
        out += c;
      }
    }
    out += '\n';
  }
  for (;;) {
    const auto nl = data.find('\n');
    auto line = data.substr(0, nl);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    out += "data: ";
    out += line;
    out += '\n';
    if (nl == std::string_view::npos) {
      break;
    }
    data.remove_prefix(nl + 1);
  }
  out += '\n';
  return out;
}

local_api::response plain_text(beast_http::status status, std::string text) {
  return {.status = status,
          .content_type = "text/plain; charset=utf-8",
          .body = std::move(text),
          .headers = {}};
}

response_message to_message(local_api::response r, unsigned version, bool keep_alive) {
  response_message m{r.status, version};
  m.set(beast_http::field::server, "porthole");
  m.set(beast_http::field::content_type, r.content_type);
  m.set("X-Content-Type-Options", "nosniff");
  // No page of another origin may embed or read what is served here (no
  // Access-Control-Allow-* is ever sent either).
  m.set("Cross-Origin-Resource-Policy", "same-origin");
  for (const auto& [name, value] : r.headers) {
    m.insert(name, value);
  }
  m.body() = std::move(r.body);
  m.keep_alive(keep_alive);
  m.prepare_payload();
  return m;
}

void close_connection(connection& c) {
  c.closing = true;
  error_code ignored;
  c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  c.stream.close();
  c.wake.notify();
}

}  // namespace

struct local_api::state {
  state(asio::io_context& io, std::string addr, local_api_limits l)
      : ex(io.get_executor()), listen_addr(std::move(addr)), limits(l) {
    try {
      const auto hp = net::split_host_port(listen_addr);
      listen_ep = net::listen_endpoint(hp);
      configured_host = lower(hp.host);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("web interface address '" + listen_addr + "': " + e.what());
    }
  }

  asio::any_io_executor ex;
  std::string listen_addr;
  tcp::endpoint listen_ep;
  std::string configured_host;  // lower case, without brackets
  local_api_limits limits;
  std::optional<tcp::acceptor> acceptor;
  tcp::endpoint bound;
  bool stopped = false;
  std::vector<route> routes;
  std::unordered_set<std::shared_ptr<connection>> connections;
  /// Event streams open now; read from other threads.
  std::shared_ptr<std::atomic<std::size_t>> listeners =
      std::make_shared<std::atomic<std::size_t>>(0);

  void add_route(route r) {
    if (!r.path.starts_with('/')) {
      throw std::invalid_argument("web interface route '" + r.path + "' does not start with '/'");
    }
    for (route& existing : routes) {
      if (existing.path == r.path && existing.prefix == r.prefix && existing.method == r.method) {
        existing = std::move(r);
        return;
      }
    }
    routes.push_back(std::move(r));
  }

  // What to answer a Host header that is missing or foreign, or nothing.
  std::optional<response> refuse_host(const request_head& head) const {
    const auto host = view(head[beast_http::field::host]);
    if (head.count(beast_http::field::host) > 1) {
      return plain_text(beast_http::status::bad_request, "more than one Host header\n");
    }
    if (host.empty()) {
      return plain_text(beast_http::status::bad_request, "missing Host header\n");
    }
    if (!is_own_host(host, bound, configured_host)) {
      const auto own = bound.address().is_unspecified()
                           ? "localhost:" + std::to_string(bound.port())
                           : net::to_string(bound);
      return plain_text(beast_http::status::forbidden,
                        "Host header '" + std::string(host) +
                            "' is not this inspector's address; DNS rebinding protection (open "
                            "http://" +
                            own + "/ instead)\n");
    }
    // A page elsewhere may send simple POSTs here (the Host is right then):
    // writes must come from this origin, or from no browser page at all.
    const auto method = head.method();
    if (method != beast_http::verb::get && method != beast_http::verb::head &&
        method != beast_http::verb::options) {
      const auto origin = view(head[beast_http::field::origin]);
      // A browser says where a request comes from: only this origin, or the
      // user (typed, bookmarked), may write. same-site is another port of
      // localhost, or another subdomain: someone else's page.
      const auto fetch_site = view(head["Sec-Fetch-Site"]);
      const bool cross_site = head.count("Sec-Fetch-Site") > 0 &&
                              !http::iequals(fetch_site, "same-origin") &&
                              !http::iequals(fetch_site, "none");
      if (cross_site || (head.count(beast_http::field::origin) > 0 &&
                         !http::iequals(origin, "http://" + std::string(host)))) {
        const std::string from = head.count(beast_http::field::origin) > 0
                                     ? "Origin '" + std::string(origin) + "'"
                                     : "Sec-Fetch-Site '" + std::string(fetch_site) + "'";
        return plain_text(beast_http::status::forbidden,
                          "cross-origin " + std::string(view(head.method_string())) + " refused: " +
                              from + " is not this inspector (http://" + std::string(host) + ")\n");
      }
    }
    return std::nullopt;
  }

  struct outcome {
    response res;
    bool events = false;  // switch the connection to an event stream instead
    async_handler later;  // set: the answer comes from calling it with `req`
    request req;

    static outcome answer(response r) {
      outcome o;
      o.res = std::move(r);
      return o;
    }
  };

  outcome dispatch(beast_http::request<beast_http::string_body>&& message) {
    const auto target = view(message.target());
    const auto question = target.find('?');
    request req;
    req.method = message.method();
    req.path = target.substr(0, question);
    if (question != std::string_view::npos) {
      for (auto& [name, value] : http::parse_form(target.substr(question + 1))) {
        req.query.insert_or_assign(std::move(name), std::move(value));  // the last wins
      }
    }
    const auto candidates = routes_for(routes, req.path);
    if (candidates.empty()) {
      return outcome::answer(
          response::error(beast_http::status::not_found, "no such path: " + req.path));
    }
    const route* chosen = nullptr;
    std::string allow;
    for (const route* r : candidates) {
      if (r->method == req.method) {
        chosen = r;
      }
      allow += (allow.empty() ? "" : ", ") + std::string(view(beast_http::to_string(r->method)));
    }
    if (chosen == nullptr) {
      auto res =
          response::error(beast_http::status::method_not_allowed,
                          std::string(view(message.method_string())) + " is not allowed on " +
                              req.path + " (allowed: " + allow + ")");
      res.headers.emplace_back("Allow", allow);
      return outcome::answer(std::move(res));
    }
    if (chosen->events) {
      outcome events;
      events.events = true;
      return events;
    }
    if (chosen->prefix) {
      req.rest = req.path.substr(chosen->path.size());
    }
    for (const auto& field : message) {
      req.headers.emplace_back(view(field.name_string()), view(field.value()));
    }
    req.body = std::move(message.body());
    if (chosen->async_fn) {
      outcome later;
      later.later = chosen->async_fn;
      later.req = std::move(req);
      return later;
    }
    // A copy: the handler may register routes, which moves the table.
    const handler fn = chosen->fn;
    try {
      return outcome::answer(fn(req));
    } catch (const std::exception& e) {
      spdlog::warn("web interface: {} {} failed: {}", view(message.method_string()), target,
                   e.what());
      return outcome::answer(response::error(beast_http::status::internal_server_error, e.what()));
    }
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<state> self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor->async_accept(net::use_nothrow);
      if (self->stopped || ec == asio::error::operation_aborted) {
        co_return;
      }
      if (ec) {
        // Out of file descriptors, say: pause rather than spin.
        spdlog::warn("web interface: accept failed: {}", ec.message());
        asio::steady_timer pause(self->ex, std::chrono::milliseconds(100));
        co_await pause.async_wait(net::use_nothrow);
        continue;
      }
      error_code peer_ec;
      const auto peer = socket.remote_endpoint(peer_ec);
      const std::string peer_name = peer_ec ? "unknown peer" : net::to_string(peer);
      if (self->connections.size() >= self->limits.max_connections) {
        spdlog::warn("web interface: {} connections already open; closing the one from {}",
                     self->connections.size(), peer_name);
        error_code ignored;
        socket.close(ignored);
        continue;
      }
      auto conn = std::make_shared<connection>(std::move(socket));
      conn->peer = peer_name;
      self->connections.insert(conn);
      net::spawn(self->ex, serve(self, conn), "web interface connection from " + peer_name);
    }
  }

  static asio::awaitable<void> serve(std::shared_ptr<state> self,
                                     std::shared_ptr<connection> conn) {
    struct registration {
      std::unordered_set<std::shared_ptr<connection>>& set;
      std::shared_ptr<connection> conn;
      ~registration() { set.erase(conn); }
    } registered{self->connections, conn};
    const local_api_limits& limits = self->limits;
    beast::flat_buffer buffer(limits.header_limit + read_buffer_room);
    while (!conn->closing) {
      request_parser parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.header_limit));
      parser.body_limit(limits.body_limit);
      conn->stream.expires_after(limits.idle_timeout);
      auto [ec, n] =
          co_await beast_http::async_read_header(conn->stream, buffer, parser, net::use_nothrow);
      if (ec) {
        co_await answer_unreadable(*self, *conn, ec);
        break;
      }
      const request_head& head = parser.get();
      const std::string target(view(head.target()));
      auto refusal = self->refuse_host(head);
      if (refusal) {
        spdlog::warn("web interface: refused {} {} from {}: {}", view(head.method_string()), target,
                     conn->peer, refusal->body.substr(0, refusal->body.find('\n')));
        auto message = to_message(std::move(*refusal), head.version(), false);
        co_await send(*self, *conn, message);
        co_await linger(*conn);
        break;
      }
      if (!parser.is_done()) {
        if (http::iequals(view(head[beast_http::field::expect]), "100-continue")) {
          conn->stream.expires_after(limits.idle_timeout);
          const auto go_on = asio::buffer(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
          co_await asio::async_write(conn->stream, go_on, net::use_nothrow);
        }
        conn->stream.expires_after(limits.idle_timeout);
        auto [body_ec, body_n] =
            co_await beast_http::async_read(conn->stream, buffer, parser, net::use_nothrow);
        if (body_ec) {
          co_await answer_unreadable(*self, *conn, body_ec);
          break;
        }
      }
      auto request = parser.release();
      const auto method = std::string(view(request.method_string()));
      const unsigned version = request.version();
      const bool keep_alive = request.keep_alive();
      auto result = self->dispatch(std::move(request));
      if (result.events) {
        spdlog::debug("web interface: {} {} {} -> event stream", conn->peer, method, target);
        co_await stream_events(self, conn);
        break;
      }
      if (result.later) {
        result.res =
            co_await answer_later(std::move(result.later), std::move(result.req), method, target);
      }
      spdlog::debug("web interface: {} {} {} -> {}", conn->peer, method, target,
                    static_cast<unsigned>(result.res.status));
      auto message = to_message(std::move(result.res), version, keep_alive && !conn->closing);
      const error_code write_ec = co_await send(*self, *conn, message);
      if (write_ec || !message.keep_alive()) {
        break;
      }
    }
    close_connection(*conn);
  }

  // Calls an async handler and waits for its answer.
  static asio::awaitable<response> answer_later(async_handler fn, request req, std::string method,
                                                std::string target) {
    auto initiate = [&](auto handler) {
      // std::function wants a copyable callable; the handler is move-only
      // and must run once.
      auto shared = std::make_shared<decltype(handler)>(std::move(handler));
      auto answered = std::make_shared<bool>(false);
      auto respond = [shared, answered](response res) {
        if (std::exchange(*answered, true)) {
          return;
        }
        asio::post(asio::append(std::move(*shared), std::move(res)));
      };
      try {
        fn(std::move(req), respond);
      } catch (const std::exception& e) {
        spdlog::warn("web interface: {} {} failed: {}", method, target, e.what());
        respond(response::error(beast_http::status::internal_server_error, e.what()));
      }
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(response)>(
        initiate, asio::use_awaitable);
  }

  static asio::awaitable<error_code> send(const state& s, connection& c,
                                          response_message& message) {
    c.stream.expires_after(s.limits.idle_timeout);
    auto [ec, n] = co_await beast_http::async_write(c.stream, message, net::use_nothrow);
    co_return ec;
  }

  // Answers a request that could not be read when the client can still hear
  // the answer (it was too large or malformed); other failures just end.
  static asio::awaitable<void> answer_unreadable(const state& s, connection& c, error_code ec) {
    auto status = beast_http::status::bad_request;
    std::string problem;
    if (ec == beast_http::error::body_limit) {
      status = beast_http::status::payload_too_large;
      problem = "request body larger than " + std::to_string(s.limits.body_limit) + " bytes";
    } else if (ec == beast_http::error::header_limit) {
      status = beast_http::status::request_header_fields_too_large;
      problem = "request header larger than " + std::to_string(s.limits.header_limit) + " bytes";
    } else if (ec.category() ==
                   beast_http::make_error_code(beast_http::error::bad_target).category() &&
               ec != beast_http::error::end_of_stream && ec != beast_http::error::partial_message) {
      problem = "malformed request: " + ec.message();
    }
    if (problem.empty()) {
      if (ec == beast::error::timeout) {
        spdlog::debug("web interface: closing idle connection from {}", c.peer);
      } else if (ec != beast_http::error::end_of_stream && ec != asio::error::operation_aborted) {
        spdlog::debug("web interface: connection from {} ended: {}", c.peer, ec.message());
      }
      co_return;
    }
    spdlog::warn("web interface: {} from {}", problem, c.peer);
    auto message = to_message(response::error(status, problem), 11, false);
    co_await send(s, c, message);
    co_await linger(c);
  }

  // Stops sending, then reads and discards what the client still sends until
  // it closes or linger_time passes: closing with unread data would reset the
  // connection and could destroy the answer before the client reads it.
  static asio::awaitable<void> linger(connection& c) {
    error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c.stream.expires_after(linger_time);
    std::array<char, 4096> sink;
    for (;;) {
      const auto into = asio::buffer(sink);
      auto [ec, n] = co_await c.stream.async_read_some(into, net::use_nothrow);
      if (ec) {
        break;
      }
    }
  }

  // Serves publish()ed events on `conn` until it fails, falls too far behind
  // or stop(). The client has nothing more to say: what it sends, or its
  // close, ends the stream at once (watch_for_hangup); a client that vanished
  // without a word is found by the write of the next event or heartbeat.
  static asio::awaitable<void> stream_events(std::shared_ptr<state> self,
                                             std::shared_ptr<connection> conn) {
    conn->streams_events = true;
    self->listeners->fetch_add(1, std::memory_order_relaxed);
    struct counted {
      std::atomic<std::size_t>& n;
      ~counted() { n.fetch_sub(1, std::memory_order_relaxed); }
    } listening{*self->listeners};
    net::spawn(self->ex, watch_for_hangup(conn), "web interface event stream to " + conn->peer);
    std::string batch(event_stream_head);
    while (!conn->closing) {
      if (batch.empty() && conn->events.empty()) {
        const auto deadline = clock::now() + self->limits.event_heartbeat;
        const bool woken = co_await conn->wake.wait_until(deadline);
        if (conn->closing) {
          break;
        }
        if (!woken) {
          batch = event_heartbeat;
        }
      }
      while (!conn->events.empty()) {
        batch += conn->events.front();
        conn->events.pop_front();
      }
      if (batch.empty()) {
        continue;
      }
      conn->stream.expires_after(self->limits.idle_timeout);
      const auto out = asio::buffer(batch);
      auto [ec, n] = co_await asio::async_write(conn->stream, out, net::use_nothrow);
      if (ec) {
        spdlog::debug("web interface: event stream to {} ended: {}", conn->peer, ec.message());
        break;
      }
      batch = std::string();
    }
  }

  static asio::awaitable<void> watch_for_hangup(std::shared_ptr<connection> conn) {
    // Waits on the socket itself: the stream's reads are timed, this wait is not.
    co_await conn->stream.socket().async_wait(tcp::socket::wait_read, net::use_nothrow);
    if (!conn->closing) {
      spdlog::debug("web interface: event stream client {} went away", conn->peer);
      close_connection(*conn);
    }
  }
};

std::string_view local_api::request::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (http::iequals(n, name)) {
      return v;
    }
  }
  return {};
}

local_api::response local_api::response::json(std::string body, beast_http::status status) {
  return {
      .status = status, .content_type = "application/json", .body = std::move(body), .headers = {}};
}

local_api::response local_api::response::error(beast_http::status status,
                                               std::string_view message) {
  const nlohmann::json body{{"error", message}};
  return json(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), status);
}

local_api::local_api(asio::io_context& io, std::string listen_addr, local_api_limits limits)
    : state_(std::make_shared<state>(io, std::move(listen_addr), limits)) {}

local_api::~local_api() {
  stop();
}

void local_api::handle(beast_http::verb method, std::string path, handler h) {
  const bool prefix = path.ends_with('/');
  state_->add_route({.path = std::move(path),
                     .prefix = prefix,
                     .method = method,
                     .fn = std::move(h),
                     .events = false,
                     .async_fn = {}});
}

void local_api::handle_async(beast_http::verb method, std::string path, async_handler h) {
  const bool prefix = path.ends_with('/');
  state_->add_route({.path = std::move(path),
                     .prefix = prefix,
                     .method = method,
                     .fn = {},
                     .events = false,
                     .async_fn = std::move(h)});
}

void local_api::serve_static(std::string path, std::string content_type, std::string_view body) {
  response asset{.status = beast_http::status::ok,
                 .content_type = std::move(content_type),
                 .body = std::string(body),
                 .headers = {}};
  state_->add_route({.path = std::move(path),
                     .prefix = false,
                     .method = beast_http::verb::get,
                     .fn = [asset = std::move(asset)](const request&) { return asset; },
                     .events = false,
                     .async_fn = {}});
}

void local_api::handle_events(std::string path) {
  state_->add_route({.path = std::move(path),
                     .prefix = false,
                     .method = beast_http::verb::get,
                     .fn = {},
                     .events = true,
                     .async_fn = {}});
}

std::shared_ptr<const std::atomic<std::size_t>> local_api::event_listeners() const {
  return state_->listeners;
}

void local_api::publish(std::string_view event, std::string_view json_data) {
  std::optional<std::string> message;
  for (const auto& conn : state_->connections) {
    if (!conn->streams_events || conn->closing) {
      continue;
    }
    if (conn->events.size() >= state_->limits.event_backlog) {
      spdlog::warn("web interface: event stream to {} fell more than {} events behind; closing it",
                   conn->peer, state_->limits.event_backlog);
      close_connection(*conn);
      continue;
    }
    if (!message) {
      message = format_event(event, json_data);
    }
    conn->events.push_back(*message);
    conn->wake.notify();
  }
}

void local_api::start() {
  if (state_->acceptor) {
    throw std::logic_error("local_api::start() called twice");
  }
  state_->acceptor.emplace(net::bind_acceptor(state_->ex, state_->listen_ep, "the web interface"));
  state_->bound = state_->acceptor->local_endpoint();
  spdlog::debug("web interface: listening on {}", net::to_string(state_->bound));
  if (!state_->bound.address().is_loopback()) {
    // Only an address given on purpose gets here: the default is 127.0.0.1.
    spdlog::warn(
        "web interface: listening on {}, not on loopback: whoever can reach this address can "
        "read the captured traffic and replay requests (inspect_addr 127.0.0.1:PORT keeps it "
        "on this machine)",
        net::to_string(state_->bound));
  }
  net::spawn(state_->ex, state::accept_loop(state_), "web interface listener");
}

void local_api::stop() {
  state& s = *state_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  if (s.acceptor) {
    error_code ignored;
    s.acceptor->close(ignored);
  }
  for (const auto& conn : s.connections) {
    close_connection(*conn);
  }
}

net::tcp::endpoint local_api::endpoint() const {
  return state_->bound;
}

}  // namespace porthole::client
