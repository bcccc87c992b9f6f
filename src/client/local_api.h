#pragma once
// The client's local HTTP server on `inspect_addr` (default 127.0.0.1:4040):
// the web inspector's page, its JSON API, live updates as server-sent events,
// and the control endpoint `porthole reload` talks to.
//
// It answers only requests whose Host header names the address it serves, so
// a web page cannot reach it through DNS rebinding.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/stream.h"

namespace porthole::client {

/// The bounds of the local API server; the defaults suit a browser tab or two
/// and the scripts of one user.
struct local_api_limits {
  /// Bytes of a request's line and headers; more gets 431.
  std::size_t header_limit = 16 * 1024;
  /// Bytes of a request body; more gets 413.
  std::uint64_t body_limit = 8 * 1024 * 1024;
  /// A read or write on a connection that takes longer ends it (an idle
  /// keep-alive connection included).
  std::chrono::milliseconds idle_timeout{30'000};
  /// Connections open at once, event streams included; more are closed as
  /// they are accepted.
  std::size_t max_connections = 64;
  /// Events waiting for one event-stream client; one more disconnects it.
  std::size_t event_backlog = 1000;
  /// An idle event stream gets a comment this often, which finds clients
  /// that vanished without closing.
  std::chrono::milliseconds event_heartbeat{15'000};
};

/// A small HTTP/1.1 server with keep-alive on a single-threaded io_context.
/// Not thread-safe: call every member on the thread that runs the io_context
/// (or before it runs). Destroy it before the io_context.
class local_api {
 public:
  /// A request as a handler sees it; the body has been read completely.
  struct request {
    boost::beast::http::verb method = boost::beast::http::verb::get;
    std::string path;  ///< the target up to '?', as sent (not percent-decoded)
    std::string rest;  ///< for a prefix route, what follows the prefix; else empty
    std::map<std::string, std::string, std::less<>> query;     ///< decoded; the last value wins
    std::vector<std::pair<std::string, std::string>> headers;  ///< in the order received
    std::string body;

    /// The first header of that name (any case), or "" if there is none.
    std::string_view header(std::string_view name) const;
  };

  /// What a handler answers. Content-Length and Connection are added.
  struct response {
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers

    /// A JSON body (already serialised).
    static response json(std::string body,
                         boost::beast::http::status status = boost::beast::http::status::ok);
    /// `{"error": message}` with that status.
    static response error(boost::beast::http::status status, std::string_view message);
  };

  /// Runs on the io_context's thread; an exception it throws becomes a 500.
  using handler = std::function<response(const request&)>;

  /// Answers later: calls `respond` exactly once, on the io_context's thread,
  /// when the answer is ready (e.g. after talking to another server). An
  /// exception it throws before calling `respond` becomes a 500. The
  /// connection waits for the answer, bounded by nothing but stop().
  using async_handler = std::function<void(request, std::function<void(response)> respond)>;

  /// `listen_addr` is "host:port" (port 0: the OS chooses; an empty host or
  /// "*" means every interface); nothing is bound before start(). Throws
  /// std::invalid_argument for an address that is not "IP:port" or
  /// "localhost:port".
  local_api(boost::asio::io_context& io, std::string listen_addr, local_api_limits limits = {});
  /// Calls stop().
  ~local_api();
  local_api(const local_api&) = delete;
  local_api& operator=(const local_api&) = delete;

  /// Answers `method` requests for `path`. A path ending in '/' is a prefix:
  /// it also answers every longer path, with the remainder in request::rest;
  /// an exact path is preferred to a prefix, and a longer prefix to a shorter
  /// one. A known path asked with another method gets 405 with Allow; an
  /// unknown path gets 404. Registering the same method and path again
  /// replaces the handler.
  void handle(boost::beast::http::verb method, std::string path, handler h);

  /// As handle(), for a handler that answers later.
  void handle_async(boost::beast::http::verb method, std::string path, async_handler h);

  /// Serves a fixed body for GET on exactly `path` (an embedded file).
  void serve_static(std::string path, std::string content_type, std::string_view body);

  /// GET on exactly `path` opens a text/event-stream that receives every
  /// publish() from then on, until the client goes away or stop().
  void handle_events(std::string path);

  /// Sends `event: EVENT` with `json_data` as its data to every open event
  /// stream; never blocks. A client that has more than
  /// local_api_limits::event_backlog events waiting is disconnected.
  void publish(std::string_view event, std::string_view json_data);

  /// The number of event streams open now. Safe to read from any thread, and
  /// after *this is gone: a producer on another thread can skip building
  /// events nobody would receive.
  std::shared_ptr<const std::atomic<std::size_t>> event_listeners() const;

  /// Binds and listens, then accepts connections on the io_context. Throws
  /// std::runtime_error naming the address if it cannot listen ("cannot
  /// listen for the web interface on 127.0.0.1:4040: Address already in use").
  void start();

  /// Closes the listener and every open connection, event streams included.
  /// Safe to call more than once.
  void stop();

  /// The address bound by start() (with the port the OS chose for port 0).
  net::tcp::endpoint endpoint() const;

 private:
  struct state;
  std::shared_ptr<state> state_;  // shared with the coroutines, which may outlive *this
};

}  // namespace porthole::client
