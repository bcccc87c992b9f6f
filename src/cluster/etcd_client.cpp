#include "cluster/etcd_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <array>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <map>
#include <optional>
#include <stdexcept>
#include <variant>

#include "cluster/etcd_json.h"
#include "net/dialer.h"
#include "net/error.h"
#include "net/spawn.h"
#include "net/tls.h"

// GCC 12 mistakes Asio's recycling allocator for coroutine frames for a
// mismatched new/delete (a known false positive, e.g. erigontech/silkworm#2046).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// Coroutines here that take references are awaited at once by their caller,
// whose frame holds what they refer to; the two that nobody awaits (a watch's
// reader, and the calls themselves, which may outlive the client) share
// what they touch.

namespace porthole::cluster {

namespace asio = net::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using net::error_code;
using net::tcp;
using steady_clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::uint32_t header_limit = 16 * 1024;
// Batches a watch reads ahead of next(); beyond, it stops reading and TCP
// holds etcd back.
constexpr std::size_t watch_queue_limit = 64;
constexpr std::size_t watch_read_size = 16 * 1024;
// The body of an error answer to a watch, read to tell what went wrong.
constexpr std::size_t watch_error_body_limit = 64 * 1024;

// TCP keep-alive of a watch's connection, in seconds and probes.
constexpr int keepalive_idle = 10;
constexpr int keepalive_interval = 5;
constexpr int keepalive_probes = 3;

template <int Name>
using tcp_option = asio::detail::socket_option::integer<IPPROTO_TCP, Name>;

using plain_stream = beast::tcp_stream;
using secure_stream = beast::ssl_stream<beast::tcp_stream>;
using slot_channel = asio::experimental::channel<void(error_code)>;

std::string authority(const etcd_endpoint& ep) {
  if (ep.host.find(':') != std::string::npos) {
    return "[" + ep.host + "]:" + ep.port;
  }
  return ep.host + ":" + ep.port;
}

std::string no_answer_within(std::chrono::milliseconds timeout) {
  return "no answer within " + std::to_string(timeout.count()) + " ms";
}

etcd_error unavailable(std::string message) {
  return etcd_error{.message = std::move(message), .unavailable = true};
}

// An HTTP/1.1 connection to one endpoint.
struct connection {
  std::size_t endpoint;
  // Outlives the stream, whose SSL handle uses it.
  std::shared_ptr<asio::ssl::context> tls;
  std::variant<plain_stream, secure_stream> stream;
  beast::flat_buffer buffer;
  bool reused = false;

  connection(std::size_t ep, tcp::socket socket)
      : endpoint(ep), stream(std::in_place_type<plain_stream>, std::move(socket)) {}
  connection(std::size_t ep, tcp::socket socket, std::shared_ptr<asio::ssl::context> context)
      : endpoint(ep),
        tls(std::move(context)),
        stream(std::in_place_type<secure_stream>, std::move(socket), *tls) {}

  beast::tcp_stream& tcp_layer() {
    return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); },
                      stream);
  }

  void close() {
    error_code ignored;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp_layer().socket().close(ignored);
  }

  // TCP keep-alive for a connection that may stay quiet for long (a
  // watch): a member whose host or network went away is noticed in about
  // keepalive_idle + keepalive_interval * keepalive_probes.
  void watch_for_a_vanished_peer() {
    tcp::socket& socket = tcp_layer().socket();
    error_code ignored;
    socket.set_option(asio::socket_base::keep_alive(true), ignored);
    socket.set_option(tcp_option<TCP_KEEPIDLE>(keepalive_idle), ignored);
    socket.set_option(tcp_option<TCP_KEEPINTVL>(keepalive_interval), ignored);
    socket.set_option(tcp_option<TCP_KEEPCNT>(keepalive_probes), ignored);
  }

  // An idle connection the member has not closed, with nothing unread:
  // fit to carry the next request.
  bool fit_for_reuse() {
    tcp::socket& socket = tcp_layer().socket();
    if (!socket.is_open()) {
      return false;
    }
    error_code ec;
    socket.non_blocking(true, ec);
    char byte = 0;
    socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
    error_code ignored;
    socket.non_blocking(false, ignored);
    return ec == asio::error::would_block;
  }
};

http::request<http::string_body> make_post(const etcd_endpoint& ep, std::string_view target,
                                           std::string body) {
  http::request<http::string_body> request{http::verb::post, target, 11};
  request.set(http::field::host, authority(ep));
  request.set(http::field::content_type, "application/json");
  request.keep_alive(true);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

// One request and its answer on a connection.
struct exchange_result {
  error_code error{};
  bool sent = false;        // the whole request went out
  bool got_answer = false;  // some of an answer came back
  unsigned status = 0;
  std::string body{};
  bool keep_alive = false;
};

template <class Stream>
asio::awaitable<exchange_result> exchange_on(Stream& stream, beast::flat_buffer& buffer,
                                             const http::request<http::string_body>& request) {
  auto [write_error, written] = co_await http::async_write(stream, request, net::use_nothrow);
  if (write_error) {
    co_return exchange_result{.error = write_error};
  }
  http::response_parser<http::string_body> parser;
  parser.header_limit(header_limit);
  parser.body_limit(max_etcd_answer);
  auto [read_error, read] = co_await http::async_read(stream, buffer, parser, net::use_nothrow);
  if (read_error) {
    co_return exchange_result{.error = read_error, .sent = true, .got_answer = parser.got_some()};
  }
  auto& response = parser.get();
  co_return exchange_result{.sent = true,
                            .got_answer = true,
                            .status = response.result_int(),
                            .body = std::move(response.body()),
                            .keep_alive = response.keep_alive()};
}

asio::awaitable<exchange_result> exchange(connection& c,
                                          const http::request<http::string_body>& request) {
  if (auto* plain = std::get_if<plain_stream>(&c.stream)) {
    co_return co_await exchange_on(*plain, c.buffer, request);
  }
  co_return co_await exchange_on(std::get<secure_stream>(c.stream), c.buffer, request);
}

// A member that closed an idle connection just as a request went out on it:
// it read none of the request, which may go again on a new connection.
bool closed_while_idle(const exchange_result& x) {
  return !x.got_answer &&
         (x.error == http::error::end_of_stream || x.error == asio::error::eof ||
          x.error == asio::error::connection_reset || x.error == asio::error::broken_pipe);
}

// Why an exchange failed, in words.
std::string exchange_failure(const exchange_result& x, std::chrono::milliseconds timeout) {
  if (x.error == beast::error::timeout) {
    return no_answer_within(timeout);
  }
  if (x.error == http::error::body_limit) {
    return "an answer over " + std::to_string(max_etcd_answer / (1024 * 1024)) + " MiB";
  }
  if (x.error == http::error::end_of_stream) {
    return "the connection closed before the answer";
  }
  return x.error.message();
}

// An HTTP answer etcd's gateway would not send: a parse error, over a limit.
bool is_bad_answer(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// A part of a streaming body read into `data`.
struct body_piece {
  error_code error;
  std::size_t size = 0;
};

template <class Stream>
asio::awaitable<body_piece> read_body_on(Stream& stream, beast::flat_buffer& buffer,
                                         http::response_parser<http::buffer_body>& parser,
                                         char* data, std::size_t size) {
  parser.get().body().data = data;
  parser.get().body().size = size;
  auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, net::use_nothrow);
  if (ec == http::error::need_buffer) {
    ec = {};
  }
  co_return body_piece{ec, size - parser.get().body().size};
}

template <class Stream>
asio::awaitable<error_code> start_stream_on(Stream& stream, beast::flat_buffer& buffer,
                                            http::response_parser<http::buffer_body>& parser,
                                            const http::request<http::string_body>& request) {
  auto [write_error, written] = co_await http::async_write(stream, request, net::use_nothrow);
  if (write_error) {
    co_return write_error;
  }
  auto [read_error, read] =
      co_await http::async_read_header(stream, buffer, parser, net::use_nothrow);
  co_return read_error;
}

}  // namespace

// The client's shared state: settings, the idle connections and those in use.
struct etcd_client::state {
  asio::any_io_executor ex;
  etcd_options options;
  std::shared_ptr<asio::ssl::context> tls;
  // One message per call holding a connection (capacity max_connections):
  // a call beyond waits to send.
  slot_channel slots;
  std::size_t preferred = 0;  // the endpoint that answered last
  std::vector<std::unique_ptr<connection>> idle;
  std::map<std::uint64_t, connection*> busy;  // closed when the client goes
  std::uint64_t next_busy_id = 1;

  // A connection on the `busy` list while a call waits on it. Off the list
  // when the wait ends, and also when the call's frame is destroyed in the
  // middle of it (the io_context going away): never a dangling pointer.
  class busy_mark {
   public:
    busy_mark(state& s, connection* c) : s_(s), id_(s.next_busy_id++) { s_.busy[id_] = c; }
    ~busy_mark() { release(); }
    busy_mark(const busy_mark&) = delete;
    busy_mark& operator=(const busy_mark&) = delete;
    void release() {
      if (id_ != 0) {
        s_.busy.erase(id_);
        id_ = 0;
      }
    }

   private:
    state& s_;
    std::uint64_t id_;
  };
  bool closed = false;

  state(asio::any_io_executor executor, etcd_options opts)
      : ex(std::move(executor)), options(std::move(opts)), slots(ex, options.max_connections) {}

  // A call's hold on one of max_connections; given back when it goes.
  struct slot {
    std::shared_ptr<state> owner;
    slot() = default;
    explicit slot(std::shared_ptr<state> s) : owner(std::move(s)) {}
    slot(slot&&) = default;
    slot& operator=(slot&&) = default;
    ~slot() {
      if (owner) {
        owner->slots.try_receive([](error_code) {});
      }
    }
  };

  std::unique_ptr<connection> take_idle(std::size_t endpoint) {
    while (true) {
      auto it = std::find_if(idle.rbegin(), idle.rend(),
                             [&](const auto& c) { return c->endpoint == endpoint; });
      if (it == idle.rend()) {
        return nullptr;
      }
      std::unique_ptr<connection> c = std::move(*it);
      idle.erase(std::next(it).base());
      if (c->fit_for_reuse()) {
        return c;
      }
      c->close();
    }
  }

  void give_back(std::unique_ptr<connection> c) {
    if (closed || idle.size() + busy.size() >= options.max_connections) {
      c->close();
      return;
    }
    c->reused = true;
    c->tcp_layer().expires_never();
    idle.push_back(std::move(c));
  }

  // Makes room for one more connection under max_connections.
  void make_room() {
    if (!idle.empty() && idle.size() + busy.size() >= options.max_connections) {
      idle.front()->close();
      idle.erase(idle.begin());
    }
  }

  // After endpoint `i` failed: the next call starts with the one after it.
  void move_off(std::size_t i) {
    if (preferred == i) {
      preferred = (i + 1) % options.endpoints.size();
    }
    std::erase_if(idle, [&](const auto& c) {
      if (c->endpoint == i) {
        c->close();
        return true;
      }
      return false;
    });
  }

  void close() {
    closed = true;
    for (auto& c : idle) {
      c->close();
    }
    idle.clear();
    for (auto& [id, c] : busy) {
      c->close();
    }
    slots.close();
  }

  etcd_error closed_error() const { return etcd_error{.message = "the etcd client was closed"}; }

  struct opened {
    std::unique_ptr<connection> conn;
    std::string failure;
  };

  // A new connection to endpoint `i`, TLS handshake done, before `deadline`.
  static asio::awaitable<opened> open_connection(std::shared_ptr<state> self, std::size_t i,
                                                 steady_clock::time_point deadline) {
    const etcd_endpoint& ep = self->options.endpoints[i];
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) {
      co_return opened{nullptr, no_answer_within(self->options.request_timeout)};
    }
    auto dialed = co_await net::dial(ep.host, ep.port, std::nullopt, left);
    if (dialed.error) {
      co_return opened{nullptr, dialed.error == net::error::timed_out
                                    ? no_answer_within(self->options.request_timeout)
                                    : dialed.failure};
    }
    if (!self->tls) {
      co_return opened{std::make_unique<connection>(i, std::move(dialed.socket)), {}};
    }
    auto conn = std::make_unique<connection>(i, std::move(dialed.socket), self->tls);
    auto& stream = std::get<secure_stream>(conn->stream);
    try {
      net::verify_host(stream.native_handle(), ep.host);
    } catch (const std::invalid_argument& e) {
      conn->close();
      co_return opened{nullptr, e.what()};
    }
    conn->tcp_layer().expires_at(deadline);
    busy_mark in_use(*self, conn.get());
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, net::use_nothrow);
    in_use.release();
    if (ec) {
      conn->close();
      co_return opened{nullptr, ec == beast::error::timeout
                                    ? no_answer_within(self->options.request_timeout)
                                    : "TLS handshake failed: " + ec.message()};
    }
    co_return opened{std::move(conn), {}};
  }

  // Waits, until `deadline`, for a call to be allowed a connection.
  static asio::awaitable<std::optional<slot>> take_slot(std::shared_ptr<state> self,
                                                        steady_clock::time_point deadline) {
    if (self->slots.try_send(error_code())) {
      co_return slot(self);
    }
    asio::steady_timer timer(self->ex, deadline);
    auto waited = co_await (self->slots.async_send(error_code(), net::use_nothrow) ||
                            timer.async_wait(net::use_nothrow));
    if (waited.index() == 0 && !std::get<0>(std::get<0>(waited))) {
      co_return slot(self);
    }
    co_return std::nullopt;
  }

  // How one attempt on one endpoint went.
  struct attempt_result {
    std::optional<exchange_result> answer{};  // an HTTP answer came back whole
    std::string failure{};                    // else why not
    bool sent = false;                        // whether the whole request went out
    bool bad_answer = false;                  // what came back is not HTTP as etcd sends it
  };

  static asio::awaitable<attempt_result> attempt(std::shared_ptr<state> self, std::size_t i,
                                                 const std::string& target,
                                                 const std::string& body) {
    const auto timeout = self->options.request_timeout;
    const auto deadline = steady_clock::now() + timeout;
    const auto request = make_post(self->options.endpoints[i], target, body);
    while (true) {
      std::unique_ptr<connection> conn = self->take_idle(i);
      if (!conn) {
        self->make_room();
        auto fresh = co_await open_connection(self, i, deadline);
        if (!fresh.conn) {
          co_return attempt_result{.failure = std::move(fresh.failure)};
        }
        conn = std::move(fresh.conn);
      }
      if (self->closed) {
        conn->close();
        co_return attempt_result{.failure = self->closed_error().message};
      }
      conn->tcp_layer().expires_at(deadline);
      busy_mark in_use(*self, conn.get());
      exchange_result x = co_await exchange(*conn, request);
      in_use.release();
      if (!x.error) {
        if (x.keep_alive) {
          self->give_back(std::move(conn));
        } else {
          conn->close();
        }
        co_return attempt_result{.answer = std::move(x), .sent = true};
      }
      conn->close();
      if (self->closed) {
        co_return attempt_result{.failure = self->closed_error().message, .sent = x.sent};
      }
      if (conn->reused && closed_while_idle(x)) {
        continue;
      }
      co_return attempt_result{.failure = exchange_failure(x, timeout),
                               .sent = x.sent,
                               .bad_answer = is_bad_answer(x.error)};
    }
  }

  // POSTs `body` to `target` and decodes etcd's answer. A call that may be
  // repeated (`idempotent`) goes to the next endpoint whenever one fails or
  // cannot serve; others only while nothing was sent.
  template <class T>
  static asio::awaitable<etcd_result<T>> call(std::shared_ptr<state> self, std::string target,
                                              std::string body, bool idempotent,
                                              etcd_result<T> (*decode)(std::string_view)) {
    if (self->closed) {
      co_return failed<T>(self->closed_error());
    }
    const auto timeout = self->options.request_timeout;
    std::optional<slot> held = co_await take_slot(self, steady_clock::now() + timeout);
    if (!held) {
      co_return failed<T>(self->closed
                              ? self->closed_error()
                              : unavailable("all " + std::to_string(self->options.max_connections) +
                                            " connections to etcd stayed busy for " +
                                            std::to_string(timeout.count()) + " ms"));
    }
    const std::size_t n = self->options.endpoints.size();
    const std::size_t first = self->preferred % n;
    std::string failures;
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (first + k) % n;
      const std::string where = authority(self->options.endpoints[i]);
      attempt_result a = co_await attempt(self, i, target, body);
      if (self->closed) {
        co_return failed<T>(self->closed_error());
      }
      if (a.bad_answer) {
        co_return failed<T>(
            etcd_error{.message = "etcd at " + where + " sent a bad answer: " + a.failure});
      }
      if (a.answer) {
        // A streaming call's error comes in a 200 answer.
        etcd_result<T> result = a.answer->status == 200
                                    ? decode(a.answer->body)
                                    : failed<T>(decode_error(a.answer->status, a.answer->body));
        const bool cannot_serve = !result && result.error->unavailable;
        if (!cannot_serve || !idempotent) {
          if (cannot_serve) {
            self->move_off(i);
          } else {
            self->preferred = i;
          }
          co_return result;
        }
        a.failure = result.error->message;
      } else if (a.sent && !idempotent) {
        self->move_off(i);
        co_return failed<T>(
            unavailable("etcd at " + where + ": " + a.failure +
                        " after the request was sent; whether it took effect is unknown"));
      }
      failures += (failures.empty() ? "" : "; ") + where + ": " + a.failure;
      self->move_off(i);
    }
    co_return failed<T>(unavailable("no etcd member could answer: " + failures));
  }

  static asio::awaitable<etcd_result<etcd_watch>> start_watch(std::shared_ptr<state> self,
                                                              std::string key, bool prefix,
                                                              std::int64_t start_revision);
};

struct etcd_watch::state {
  explicit state(std::unique_ptr<connection> c)
      : conn(std::move(c)),
        splitter(max_etcd_answer),
        batches(conn->tcp_layer().socket().get_executor(), watch_queue_limit) {}

  std::unique_ptr<connection> conn;
  http::response_parser<http::buffer_body> parser;
  json_object_splitter splitter;
  asio::experimental::channel<void(error_code, etcd_result<watch_batch>)> batches;
  std::array<char, watch_read_size> chunk{};
  bool canceled = false;
  bool ended = false;  // the reader sent its last batch or error
  etcd_error end_error;

  etcd_error canceled_error() const { return etcd_error{.message = "the watch was canceled"}; }

  asio::awaitable<body_piece> read_body() {
    if (auto* plain = std::get_if<plain_stream>(&conn->stream)) {
      co_return co_await read_body_on(*plain, conn->buffer, parser, chunk.data(), chunk.size());
    }
    co_return co_await read_body_on(std::get<secure_stream>(conn->stream), conn->buffer, parser,
                                    chunk.data(), chunk.size());
  }

  // Sends the create request and reads the answer's header.
  asio::awaitable<error_code> start_stream(const http::request<http::string_body>& request) {
    parser.header_limit(header_limit);
    // The whole stream is one body: what bounds it is the splitter's limit per object.
    parser.body_limit(boost::none);
    if (auto* plain = std::get_if<plain_stream>(&conn->stream)) {
      co_return co_await start_stream_on(*plain, conn->buffer, parser, request);
    }
    co_return co_await start_stream_on(std::get<secure_stream>(conn->stream), conn->buffer, parser,
                                       request);
  }

  // The next whole JSON object of the stream, reading as needed.
  asio::awaitable<etcd_result<std::string>> next_object() {
    while (true) {
      auto next = splitter.next();
      if (next.error) {
        co_return failed<std::string>(
            etcd_error{.message = "malformed watch stream from etcd: " + *next.error});
      }
      if (next.object) {
        co_return etcd_result<std::string>{std::nullopt, std::move(*next.object)};
      }
      if (parser.is_done()) {
        co_return failed<std::string>(unavailable("etcd ended the watch stream"));
      }
      body_piece piece = co_await read_body();
      if (piece.error) {
        co_return failed<std::string>(
            unavailable("the watch stream broke: " + (piece.error == beast::error::timeout
                                                          ? std::string("no answer in time")
                                                          : piece.error.message())));
      }
      splitter.feed(std::string_view(chunk.data(), piece.size));
    }
  }

  // The error of an answer that is not HTTP 200, from its (bounded) body.
  asio::awaitable<etcd_error> read_error_answer() {
    std::string body;
    while (!parser.is_done() && body.size() < watch_error_body_limit) {
      body_piece piece = co_await read_body();
      if (piece.error) {
        break;
      }
      body.append(chunk.data(), piece.size);
    }
    co_return decode_error(parser.get().result_int(), body);
  }

  // Marks the end of the stream; `last` is what next() gives from then on.
  void end(etcd_error last) {
    ended = true;
    end_error = std::move(last);
    conn->close();
  }

  // Reads the stream into `batches` until it ends or the watch is canceled.
  static asio::awaitable<void> read(std::shared_ptr<state> self) {
    while (!self->canceled && !self->ended) {
      etcd_result<watch_batch> item;
      auto object = co_await self->next_object();
      if (self->canceled) {
        co_return;
      }
      if (!object) {
        item = failed<watch_batch>(std::move(*object.error));
      } else if (auto message = decode_watch_message(object.value); !message) {
        item = failed<watch_batch>(std::move(*message.error));
      } else {
        item.value = std::move(message->batch);
      }
      if (!item) {
        self->end(*item.error);
      } else if (item->canceled) {
        self->end(etcd_error{
            .message = "etcd canceled the watch" +
                       (item->cancel_reason.empty() ? std::string() : ": " + item->cancel_reason)});
      }
      // ended is set before the send: next() then tells "nothing more" from
      // "not yet" by whether the queue is empty.
      auto [ec] =
          co_await self->batches.async_send(error_code(), std::move(item), net::use_nothrow);
      if (ec) {
        co_return;
      }
    }
  }
};

asio::awaitable<etcd_result<etcd_watch>> etcd_client::state::start_watch(
    std::shared_ptr<state> self, std::string key, bool prefix, std::int64_t start_revision) {
  const std::string body = encode_watch_create(key, prefix, start_revision);
  const auto timeout = self->options.request_timeout;
  const std::size_t n = self->options.endpoints.size();
  const std::size_t first = self->preferred % n;
  std::string failures;
  for (std::size_t k = 0; k < n && !self->closed; ++k) {
    const std::size_t i = (first + k) % n;
    const std::string where = authority(self->options.endpoints[i]);
    const auto deadline = steady_clock::now() + timeout;
    auto fresh = co_await open_connection(self, i, deadline);
    if (!fresh.conn) {
      failures += (failures.empty() ? "" : "; ") + where + ": " + fresh.failure;
      self->move_off(i);
      continue;
    }
    auto w = std::make_shared<etcd_watch::state>(std::move(fresh.conn));
    w->conn->watch_for_a_vanished_peer();
    w->conn->tcp_layer().expires_at(deadline);
    const auto request = make_post(self->options.endpoints[i], "/v3/watch", body);
    // Until the watch is confirmed, destroying the client ends it.
    busy_mark in_use(*self, w->conn.get());
    const error_code started = co_await w->start_stream(request);
    std::string failure;
    if (started == beast::error::timeout) {
      failure = no_answer_within(timeout);
    } else if (started) {
      failure = started.message();
    } else if (w->parser.get().result_int() != 200) {
      etcd_error error = co_await w->read_error_answer();
      in_use.release();
      w->conn->close();
      if (!error.unavailable) {
        co_return failed<etcd_watch>(std::move(error));
      }
      failure = error.message;
    } else {
      auto object = co_await w->next_object();
      in_use.release();
      auto message = object ? decode_watch_message(object.value)
                            : failed<watch_message>(std::move(*object.error));
      if (self->closed) {
        co_return failed<etcd_watch>(self->closed_error());
      }
      if (message && message->created) {
        w->conn->tcp_layer().expires_never();
        self->preferred = i;
        if (message->batch.canceled) {
          w->end(etcd_error{.message = "etcd canceled the watch: " + message->batch.cancel_reason});
          w->batches.try_send(error_code(),
                              etcd_result<watch_batch>{std::nullopt, std::move(message->batch)});
        } else {
          net::spawn(self->ex, etcd_watch::state::read(w), "etcd watch " + where);
        }
        co_return etcd_result<etcd_watch>{std::nullopt, etcd_watch(std::move(w))};
      }
      w->conn->close();
      if (message) {
        co_return failed<etcd_watch>(
            etcd_error{.message = "etcd at " + where + " did not confirm the watch"});
      }
      if (!message.error->unavailable) {
        co_return failed<etcd_watch>(std::move(*message.error));
      }
      failure = message.error->message;
    }
    in_use.release();
    w->conn->close();
    failures += (failures.empty() ? "" : "; ") + where + ": " + failure;
    self->move_off(i);
  }
  if (self->closed) {
    co_return failed<etcd_watch>(self->closed_error());
  }
  co_return failed<etcd_watch>(unavailable("no etcd member could answer: " + failures));
}

namespace {

asio::awaitable<etcd_result<watch_batch>> next_batch(std::shared_ptr<etcd_watch::state> w) {
  if (!w) {
    co_return failed<watch_batch>(etcd_error{.message = "not a started watch"});
  }
  if (w->canceled) {
    co_return failed<watch_batch>(w->canceled_error());
  }
  if (w->ended && !w->batches.ready()) {
    co_return failed<watch_batch>(w->end_error);
  }
  auto [ec, batch] = co_await w->batches.async_receive(net::use_nothrow);
  if (w->canceled) {
    co_return failed<watch_batch>(w->canceled_error());
  }
  if (ec) {
    co_return failed<watch_batch>(etcd_error{.message = "the watch ended: " + ec.message()});
  }
  co_return std::move(batch);
}

}  // namespace

etcd_watch& etcd_watch::operator=(etcd_watch&& other) noexcept {
  if (this != &other) {
    cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}

etcd_watch::~etcd_watch() {
  cancel();
}

asio::awaitable<etcd_result<watch_batch>> etcd_watch::next() {
  return next_batch(state_);
}

void etcd_watch::cancel() {
  if (!state_ || state_->canceled) {
    return;
  }
  state_->canceled = true;
  state_->conn->close();
  state_->batches.close();
}

etcd_client::etcd_client(asio::any_io_executor ex, etcd_options options) {
  if (options.endpoints.empty()) {
    throw std::runtime_error("no etcd endpoint to connect to");
  }
  if (options.max_connections == 0) {
    throw std::runtime_error("max_connections to etcd must be at least 1");
  }
  std::shared_ptr<asio::ssl::context> tls;
  if (options.tls) {
    tls = std::make_shared<asio::ssl::context>(net::make_client_tls(
        options.ca_file.empty() ? std::nullopt : std::optional(options.ca_file)));
    if (options.cert_file.empty() != options.key_file.empty()) {
      throw std::runtime_error(
          "an etcd client certificate needs both its certificate and its key file");
    }
    if (!options.cert_file.empty()) {
      error_code ec;
      tls->use_certificate_chain_file(options.cert_file.string(), ec);
      if (ec) {
        throw std::runtime_error("cannot load the etcd client certificate " +
                                 options.cert_file.string() + ": " + ec.message());
      }
      tls->use_private_key_file(options.key_file.string(), asio::ssl::context::pem, ec);
      if (ec) {
        throw std::runtime_error("cannot load the etcd client key " + options.key_file.string() +
                                 ": " + ec.message());
      }
    }
  }
  state_ = std::make_shared<state>(std::move(ex), std::move(options));
  state_->tls = std::move(tls);
}

etcd_client::~etcd_client() {
  state_->close();
}

asio::awaitable<etcd_result<range_result>> etcd_client::range(std::string key) {
  return state::call(state_, "/v3/kv/range", encode_range(key, false), true, &decode_range);
}

asio::awaitable<etcd_result<range_result>> etcd_client::range_prefix(std::string prefix) {
  return state::call(state_, "/v3/kv/range", encode_range(prefix, true), true, &decode_range);
}

asio::awaitable<etcd_result<std::int64_t>> etcd_client::put(std::string key, std::string value,
                                                            std::int64_t lease) {
  return state::call(state_, "/v3/kv/put", encode_put(key, value, lease), false, &decode_put);
}

asio::awaitable<etcd_result<erase_result>> etcd_client::erase(std::string key) {
  return state::call(state_, "/v3/kv/deleterange", encode_erase(key, false), false, &decode_erase);
}

asio::awaitable<etcd_result<erase_result>> etcd_client::erase_prefix(std::string prefix) {
  return state::call(state_, "/v3/kv/deleterange", encode_erase(prefix, true), false,
                     &decode_erase);
}

asio::awaitable<etcd_result<txn_result>> etcd_client::txn(std::vector<compare> compares,
                                                          std::vector<op> success,
                                                          std::vector<op> failure) {
  return state::call(state_, "/v3/kv/txn", encode_txn(compares, success, failure), false,
                     &decode_txn);
}

asio::awaitable<etcd_result<lease_grant_result>> etcd_client::lease_grant(
    std::chrono::seconds ttl) {
  return state::call(state_, "/v3/lease/grant", encode_lease_grant(ttl), false,
                     &decode_lease_grant);
}

asio::awaitable<etcd_result<std::chrono::seconds>> etcd_client::lease_keepalive(std::int64_t id) {
  return state::call(state_, "/v3/lease/keepalive", encode_lease_id(id), true,
                     &decode_lease_keepalive);
}

asio::awaitable<etcd_result<std::int64_t>> etcd_client::lease_revoke(std::int64_t id) {
  return state::call(state_, "/v3/lease/revoke", encode_lease_id(id), false, &decode_revision);
}

asio::awaitable<etcd_result<etcd_watch>> etcd_client::watch(std::string key, bool prefix,
                                                            std::int64_t start_revision) {
  return state::start_watch(state_, std::move(key), prefix, start_revision);
}

}  // namespace porthole::cluster
