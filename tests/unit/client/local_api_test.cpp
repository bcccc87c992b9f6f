#include "client/local_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

namespace porthole::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using verb = beast_http::verb;
using status = beast_http::status;
using http_response = beast_http::response<beast_http::string_body>;

// Only a guard against a hung test: every exchange ends on its own first.
constexpr auto guard_time = std::chrono::seconds(10);

// How one client operation ended.
struct outcome {
  error_code ec;
  std::size_t bytes = 0;
};

// A completion handler that records the outcome.
struct record {
  outcome* out;
  void operator()(error_code ec) const { out->ec = ec; }
  void operator()(error_code ec, std::size_t n) const {
    out->ec = ec;
    out->bytes = n;
  }
};

// A client that runs each operation to its end on the test's thread, every
// operation bounded by guard_time.
class test_client {
 public:
  test_client(asio::io_context& io, const tcp::endpoint& server) : io_(io), stream_(io) {
    stream_.expires_after(guard_time);
    const auto [ec, n] = run([&](record r) { stream_.async_connect(server, r); });
    EXPECT_FALSE(ec) << "connect: " << ec.message();
  }

  /// Sends `raw` as it is.
  error_code write(std::string_view raw) {
    stream_.expires_after(guard_time);
    return run([&](record r) { asio::async_write(stream_, asio::buffer(raw), r); }).ec;
  }

  /// Reads one response, or fails if the connection ends first.
  std::pair<error_code, http_response> try_read_response() {
    beast_http::response_parser<beast_http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    stream_.expires_after(guard_time);
    const auto [ec, n] =
        run([&](record r) { beast_http::async_read(stream_, buffer_, parser, r); });
    return {ec, parser.release()};
  }

  /// Reads one response; a default response if the connection ended first.
  http_response read_response() {
    auto [ec, res] = try_read_response();
    EXPECT_FALSE(ec) << "reading the response: " << ec.message();
    return res;
  }

  /// Sends one request with these Host and body, and reads the response.
  http_response request(verb method, std::string target, std::string host, std::string body = {}) {
    beast_http::request<beast_http::string_body> req{method, target, 11};
    req.set(beast_http::field::host, host);
    if (!body.empty() || method == verb::post) {
      req.body() = std::move(body);
      req.prepare_payload();
    }
    stream_.expires_after(guard_time);
    const auto [ec, n] = run([&](record r) { beast_http::async_write(stream_, req, r); });
    EXPECT_FALSE(ec) << "sending the request: " << ec.message();
    return read_response();
  }

  /// What arrives up to and including `delimiter`; "" if the connection ends first.
  std::string read_until(std::string_view delimiter) {
    stream_.expires_after(guard_time);
    const auto [ec, n] = run([&](record r) {
      asio::async_read_until(stream_, asio::dynamic_buffer(pending_), delimiter, r);
    });
    if (ec) {
      return {};
    }
    std::string through = pending_.substr(0, n);
    pending_.erase(0, n);
    return through;
  }

  /// Reads and discards until the connection fails; asio::error::eof when
  /// the server closed it.
  error_code read_to_end() {
    std::array<char, 64 * 1024> sink;
    for (;;) {
      stream_.expires_after(guard_time);
      const auto [ec, n] = run([&](record r) { stream_.async_read_some(asio::buffer(sink), r); });
      if (ec) {
        return ec;
      }
    }
  }

 private:
  // Starts an operation with a recording handler and runs it to its end.
  template <class Start>
  outcome run(Start start) {
    outcome out;
    start(record{&out});
    io_.restart();
    io_.run();
    return out;
  }

  asio::io_context& io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string pending_;
};

// A local_api on 127.0.0.1:0, served by its own thread as the client's
// single-threaded io_context would; the test talks to it over loopback.
class LocalApi : public ::testing::Test {
 protected:
  ~LocalApi() override { shut_down(); }

  local_api& make_api(local_api_limits limits = {}) {
    api_.emplace(server_io_, "127.0.0.1:0", limits);
    return *api_;
  }

  void start() {
    api_->start();
    work_.emplace(server_io_.get_executor());
    server_thread_ = std::thread([this] {
      server_io_.run();
      server_done_.set_value();
    });
  }

  // Runs `fn` on the server's thread (as the agent would) and waits for it.
  void on_server(std::function<void()> fn) {
    std::promise<void> done;
    asio::post(server_io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // stop(), then expects the server's coroutines to finish on their own.
  void shut_down() {
    if (!server_thread_.joinable()) {
      return;
    }
    on_server([this] { api_->stop(); });
    work_.reset();
    if (server_done_.get_future().wait_for(guard_time) != std::future_status::ready) {
      ADD_FAILURE() << "the server still had work " << guard_time.count() << " s after stop()";
      server_io_.stop();
    }
    server_thread_.join();
  }

  std::string host() const { return "127.0.0.1:" + std::to_string(api_->endpoint().port()); }

  test_client connect() { return test_client(client_io_, api_->endpoint()); }

  http_response get(std::string target) { return connect().request(verb::get, target, host()); }

  asio::io_context server_io_;
  asio::io_context client_io_;
  std::optional<local_api> api_;
  // Keeps the server's thread running until shut_down(), whatever the test stops.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::promise<void> server_done_;
  std::thread server_thread_;
};

local_api::response echo_request(const local_api::request& r) {
  nlohmann::json query = nlohmann::json::object();
  for (const auto& [name, value] : r.query) {
    query[name] = value;
  }
  const nlohmann::json body{{"path", r.path},
                            {"rest", r.rest},
                            {"query", query},
                            {"body", r.body},
                            {"x_test", r.header("x-test")}};
  return local_api::response::json(body.dump());
}

TEST_F(LocalApi, ExactRouteAnswersWithTheHandlersJson) {
  make_api().handle(verb::get, "/api/tunnels", [](const local_api::request&) {
    return local_api::response::json(R"({"tunnels":[]})");
  });
  start();

  const auto res = get("/api/tunnels");

  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res[beast_http::field::content_type], "application/json");
  EXPECT_EQ(res.body(), R"({"tunnels":[]})");
}

TEST_F(LocalApi, PrefixRouteGetsTheRestOfThePathAndTheDecodedQuery) {
  make_api().handle(verb::get, "/api/requests/http/", echo_request);
  start();

  const auto res = get("/api/requests/http/abc123?limit=5&tunnel_name=my%20app+2");

  ASSERT_EQ(res.result(), status::ok);
  const auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["path"], "/api/requests/http/abc123");
  EXPECT_EQ(body["rest"], "abc123");
  EXPECT_EQ(body["query"]["limit"], "5");
  EXPECT_EQ(body["query"]["tunnel_name"], "my app 2");
}

TEST_F(LocalApi, ExactRouteIsPreferredToAPrefixOfIt) {
  auto& api = make_api();
  api.handle(verb::get, "/api/",
             [](const local_api::request&) { return local_api::response::json(R"("prefix")"); });
  api.handle(verb::get, "/api/tunnels",
             [](const local_api::request&) { return local_api::response::json(R"("exact")"); });
  start();

  EXPECT_EQ(get("/api/tunnels").body(), R"("exact")");
  EXPECT_EQ(get("/api/other").body(), R"("prefix")");
}

TEST_F(LocalApi, RequestBodyAndHeadersReachTheHandler) {
  make_api().handle(verb::post, "/api/requests/http", echo_request);
  start();
  auto client = connect();

  const std::string body = R"({"id":"abc"})";
  ASSERT_FALSE(client.write("POST /api/requests/http HTTP/1.1\r\nHost: " + host() +
                            "\r\nX-Test: yes\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body));
  const auto res = client.read_response();

  ASSERT_EQ(res.result(), status::ok);
  const auto echoed = nlohmann::json::parse(res.body());
  EXPECT_EQ(echoed["body"], body);
  EXPECT_EQ(echoed["x_test"], "yes");
}

TEST_F(LocalApi, UnknownPathGets404WithAJsonError) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();

  const auto res = get("/api/nothing-here");

  EXPECT_EQ(res.result(), status::not_found);
  EXPECT_EQ(res[beast_http::field::content_type], "application/json");
  EXPECT_THAT(nlohmann::json::parse(res.body())["error"].get<std::string>(),
              HasSubstr("/api/nothing-here"));
}

TEST_F(LocalApi, WrongMethodOnAKnownPathGets405WithAllow) {
  auto& api = make_api();
  api.handle(verb::get, "/api/requests/http", echo_request);
  api.handle(verb::delete_, "/api/requests/http", echo_request);
  start();

  const auto res = connect().request(verb::put, "/api/requests/http", host(), "{}");

  EXPECT_EQ(res.result(), status::method_not_allowed);
  EXPECT_EQ(res[beast_http::field::allow], "GET, DELETE");
  EXPECT_TRUE(nlohmann::json::parse(res.body()).contains("error"));
}

TEST_F(LocalApi, HandlerExceptionBecomes500WithItsMessage) {
  make_api().handle(verb::get, "/api/broken", [](const local_api::request&) -> local_api::response {
    throw std::runtime_error("the store is gone");
  });
  start();

  const auto res = get("/api/broken");

  EXPECT_EQ(res.result(), status::internal_server_error);
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"], "the store is gone");
}

TEST_F(LocalApi, AsyncHandlerAnswersWhenItCallsRespondLater) {
  asio::steady_timer later(server_io_);
  make_api().handle_async(
      verb::post, "/api/later",
      [&](local_api::request req, std::function<void(local_api::response)> respond) {
        later.expires_after(std::chrono::milliseconds(50));
        later.async_wait([req = std::move(req), respond](error_code) {
          respond(local_api::response::json("\"" + req.body + "\""));
        });
      });
  start();
  auto client = connect();

  const auto first = client.request(verb::post, "/api/later", host(), "one");
  const auto second = client.request(verb::post, "/api/later", host(), "two");

  EXPECT_EQ(first.result(), status::ok);
  EXPECT_EQ(first.body(), R"("one")");
  EXPECT_EQ(second.body(), R"("two")");
}

TEST_F(LocalApi, AsyncHandlerThatThrowsBeforeAnsweringGets500) {
  make_api().handle_async(verb::get, "/api/later",
                          [](local_api::request, std::function<void(local_api::response)>) {
                            throw std::runtime_error("cannot start");
                          });
  start();

  const auto res = get("/api/later");

  EXPECT_EQ(res.result(), status::internal_server_error);
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"], "cannot start");
}

TEST_F(LocalApi, AsyncHandlerAnsweringTwiceSendsOnlyTheFirstAnswer) {
  make_api().handle_async(
      verb::get, "/api/twice",
      [](local_api::request, std::function<void(local_api::response)> respond) {
        respond(local_api::response::json(R"("first")"));
        respond(local_api::response::json(R"("second")"));
      });
  start();
  auto client = connect();

  EXPECT_EQ(client.request(verb::get, "/api/twice", host()).body(), R"("first")");
  EXPECT_EQ(client.request(verb::get, "/api/twice", host()).body(), R"("first")");
}

TEST_F(LocalApi, StaticAssetIsServedWithItsContentType) {
  make_api().serve_static("/", "text/html; charset=utf-8",
                          "<!doctype html><title>porthole</title>");
  start();

  const auto res = get("/");

  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res[beast_http::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(res.body(), "<!doctype html><title>porthole</title>");
  EXPECT_EQ(get("/index.html").result(), status::not_found);
}

TEST_F(LocalApi, ForeignHostHeaderIsRefusedAsDnsRebinding) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();
  const auto port = std::to_string(api_->endpoint().port());

  const auto bare = connect().request(verb::get, "/api/tunnels", "evil.example");
  const auto with_port = connect().request(verb::get, "/api/tunnels", "evil.example:" + port);

  EXPECT_EQ(bare.result(), status::forbidden);
  EXPECT_THAT(bare.body(), StartsWith("Host header 'evil.example' is not this inspector's "
                                      "address; DNS rebinding protection"));
  EXPECT_EQ(with_port.result(), status::forbidden);
  EXPECT_THAT(with_port.body(), HasSubstr("'evil.example:" + port + "'"));
}

TEST_F(LocalApi, CrossOriginWriteIsRefusedAndSameOriginWriteAccepted) {
  make_api().handle(verb::post, "/api/requests/http", echo_request);
  start();
  auto post_with = [&](std::string extra) {
    auto client = connect();
    EXPECT_FALSE(client.write("POST /api/requests/http HTTP/1.1\r\nHost: " + host() + "\r\n" +
                              extra + "Content-Length: 2\r\n\r\n{}"));
    return client.read_response();
  };

  const auto foreign = post_with("Origin: http://evil.example\r\n");
  const auto null_origin = post_with("Origin: null\r\n");
  const auto cross_site = post_with("Sec-Fetch-Site: cross-site\r\n");
  const auto same = post_with("Origin: http://" + host() + "\r\n");
  const auto no_browser = post_with("");

  EXPECT_EQ(foreign.result(), status::forbidden);
  EXPECT_THAT(foreign.body(), HasSubstr("cross-origin POST refused"));
  EXPECT_EQ(null_origin.result(), status::forbidden);
  EXPECT_EQ(cross_site.result(), status::forbidden);
  EXPECT_EQ(same.result(), status::ok);
  EXPECT_EQ(no_browser.result(), status::ok);
}

TEST_F(LocalApi, WriteMarkedSameSiteIsRefusedAndSameOriginOrNoneAccepted) {
  make_api().handle(verb::post, "/api/requests/http", echo_request);
  start();
  auto post_with = [&](std::string extra) {
    auto client = connect();
    EXPECT_FALSE(client.write("POST /api/requests/http HTTP/1.1\r\nHost: " + host() + "\r\n" +
                              extra + "Content-Length: 2\r\n\r\n{}"));
    return client.read_response();
  };

  const auto same_site = post_with("Sec-Fetch-Site: same-site\r\n");
  const auto same_origin =
      post_with("Origin: http://" + host() + "\r\nSec-Fetch-Site: same-origin\r\n");
  const auto typed = post_with("Sec-Fetch-Site: none\r\n");

  EXPECT_EQ(same_site.result(), status::forbidden);
  EXPECT_THAT(same_site.body(), HasSubstr("Sec-Fetch-Site 'same-site'"));
  EXPECT_EQ(same_origin.result(), status::ok);
  EXPECT_EQ(typed.result(), status::ok);
}

TEST_F(LocalApi, ResponsesMayNotBeReadOrEmbeddedByOtherOrigins) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();
  auto client = connect();
  EXPECT_FALSE(client.write("GET /api/tunnels HTTP/1.1\r\nHost: " + host() +
                            "\r\nOrigin: http://evil.example\r\n\r\n"));
  const auto res = client.read_response();

  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res["Cross-Origin-Resource-Policy"], "same-origin");
  EXPECT_EQ(res.count("Access-Control-Allow-Origin"), 0u);
}

TEST_F(LocalApi, LoopbackHostWithAnotherPortIsRefused) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();

  const auto res = connect().request(verb::get, "/api/tunnels", "127.0.0.1:1");

  EXPECT_EQ(res.result(), status::forbidden);
}

TEST_F(LocalApi, LoopbackNamesWithTheServedPortAreAccepted) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();
  const auto port = std::to_string(api_->endpoint().port());

  for (const std::string& host :
       {"127.0.0.1:" + port, "localhost:" + port, "LocalHost:" + port, "[::1]:" + port}) {
    EXPECT_EQ(connect().request(verb::get, "/api/tunnels", host).result(), status::ok) << host;
  }
}

TEST_F(LocalApi, MissingHostHeaderGets400) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();
  auto client = connect();

  ASSERT_FALSE(client.write("GET /api/tunnels HTTP/1.1\r\n\r\n"));
  const auto res = client.read_response();

  EXPECT_EQ(res.result(), status::bad_request);
  EXPECT_THAT(res.body(), HasSubstr("missing Host header"));
}

TEST_F(LocalApi, BodyOverTheLimitGets413) {
  make_api().handle(verb::post, "/api/requests/http", echo_request);
  start();
  auto client = connect();

  const std::string body(local_api_limits{}.body_limit + 1, 'x');
  ASSERT_FALSE(client.write("POST /api/requests/http HTTP/1.1\r\nHost: " + host() +
                            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  // The whole body is sent, as a client would: the server reads it away and
  // the answer is still there to read afterwards.
  client.write(body);
  const auto res = client.read_response();

  EXPECT_EQ(res.result(), status::payload_too_large);
  EXPECT_THAT(res.body(), HasSubstr("request body larger than 8388608 bytes"));
}

TEST_F(LocalApi, HeaderOverTheLimitGets431) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();
  auto client = connect();

  const std::string cookie(local_api_limits{}.header_limit, 'c');
  ASSERT_FALSE(client.write("GET /api/tunnels HTTP/1.1\r\nHost: " + host() +
                            "\r\nCookie: " + cookie + "\r\n\r\n"));
  const auto res = client.read_response();

  EXPECT_EQ(res.result(), status::request_header_fields_too_large);
}

TEST_F(LocalApi, ExpectContinueGetsAnInterimResponseBeforeTheBody) {
  make_api().handle(verb::post, "/api/requests/http", echo_request);
  start();
  auto client = connect();

  ASSERT_FALSE(client.write("POST /api/requests/http HTTP/1.1\r\nHost: " + host() +
                            "\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
  EXPECT_EQ(client.read_until("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_FALSE(client.write("{}"));
  const auto res = client.read_response();

  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(nlohmann::json::parse(res.body())["body"], "{}");
}

TEST_F(LocalApi, TwoRequestsShareOneKeepAliveConnection) {
  make_api().handle(verb::get, "/api/requests/http/", echo_request);
  start();
  auto client = connect();

  const auto first = client.request(verb::get, "/api/requests/http/1", host());
  const auto second = client.request(verb::get, "/api/requests/http/2", host());

  EXPECT_TRUE(first.keep_alive());
  EXPECT_EQ(nlohmann::json::parse(first.body())["rest"], "1");
  EXPECT_EQ(nlohmann::json::parse(second.body())["rest"], "2");
}

TEST_F(LocalApi, ConnectionCloseRequestEndsTheConnectionAfterTheResponse) {
  make_api().handle(verb::get, "/api/tunnels", echo_request);
  start();
  auto client = connect();

  ASSERT_FALSE(client.write("GET /api/tunnels HTTP/1.1\r\nHost: " + host() +
                            "\r\nConnection: close\r\n\r\n"));
  const auto res = client.read_response();

  EXPECT_EQ(res.result(), status::ok);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(client.read_to_end(), asio::error::eof);
}

TEST_F(LocalApi, IdleConnectionIsClosedAfterTheTimeout) {
  make_api({.idle_timeout = std::chrono::milliseconds(200)});
  start();
  auto client = connect();

  const auto started = std::chrono::steady_clock::now();
  const auto ended = client.read_to_end();

  EXPECT_EQ(ended, asio::error::eof);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST_F(LocalApi, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  make_api({.max_connections = 2}).handle(verb::get, "/api/tunnels", echo_request);
  start();
  auto first = connect();
  auto second = connect();
  // A request answered on each means the server has counted both.
  ASSERT_EQ(first.request(verb::get, "/api/tunnels", host()).result(), status::ok);
  ASSERT_EQ(second.request(verb::get, "/api/tunnels", host()).result(), status::ok);

  auto third = connect();

  const auto ended = third.read_to_end();
  EXPECT_TRUE(ended == asio::error::eof || ended == asio::error::connection_reset)
      << ended.message();
  EXPECT_EQ(first.request(verb::get, "/api/tunnels", host()).result(), status::ok);
}

TEST_F(LocalApi, EventStreamClientReceivesAPublishedEvent) {
  make_api().handle_events("/api/events");
  start();
  auto client = connect();
  ASSERT_FALSE(client.write("GET /api/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
  const auto head = client.read_until("\r\n\r\n");
  ASSERT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, HasSubstr("Content-Type: text/event-stream\r\n"));

  on_server([this] { api_->publish("request", R"({"id":"1"})"); });

  EXPECT_EQ(client.read_until("\n\n"), "event: request\ndata: {\"id\":\"1\"}\n\n");
}

TEST_F(LocalApi, EventDataOfSeveralLinesIsSentAsOneDataFieldPerLine) {
  make_api().handle_events("/api/events");
  start();
  auto client = connect();
  ASSERT_FALSE(client.write("GET /api/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
  ASSERT_FALSE(client.read_until("\r\n\r\n").empty());

  on_server([this] { api_->publish("tunnel", "{\n  \"name\": \"web\"\n}"); });

  EXPECT_EQ(client.read_until("\n\n"),
            "event: tunnel\ndata: {\ndata:   \"name\": \"web\"\ndata: }\n\n");
}

TEST_F(LocalApi, EventStreamClientTooFarBehindIsDisconnected) {
  make_api({.event_backlog = 3}).handle_events("/api/events");
  start();
  auto client = connect();
  ASSERT_FALSE(client.write("GET /api/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
  ASSERT_FALSE(client.read_until("\r\n\r\n").empty());

  // Published in one go, the writer never gets to run between them.
  on_server([this] {
    for (int i = 0; i < 5; ++i) {
      api_->publish("request", std::to_string(i));
    }
  });

  const auto ended = client.read_to_end();
  EXPECT_TRUE(ended == asio::error::eof || ended == asio::error::connection_reset)
      << ended.message();
}

TEST_F(LocalApi, EventStreamClientThatHangsUpFreesItsConnectionAtOnce) {
  auto& api = make_api({.max_connections = 1, .event_heartbeat = std::chrono::seconds(60)});
  api.handle(verb::get, "/api/tunnels", echo_request);
  api.handle_events("/api/events");
  start();
  {
    auto events = connect();
    ASSERT_FALSE(events.write("GET /api/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
    ASSERT_FALSE(events.read_until("\r\n\r\n").empty());
  }

  // The server learns of the hang-up a moment later, without waiting for a
  // heartbeat; until then the one connection allowed is still taken.
  std::optional<status> answered;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!answered && std::chrono::steady_clock::now() < deadline) {
    auto client = connect();
    ASSERT_FALSE(client.write("GET /api/tunnels HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
    const auto [ec, res] = client.try_read_response();
    if (!ec) {
      answered = res.result();
    }
  }
  EXPECT_EQ(answered, status::ok);
}

TEST_F(LocalApi, EventListenersCountsOpenEventStreams) {
  auto& api = make_api({.event_heartbeat = std::chrono::seconds(60)});
  api.handle_events("/api/events");
  const auto listeners = api.event_listeners();
  start();
  EXPECT_EQ(listeners->load(), 0u);
  {
    auto events = connect();
    ASSERT_FALSE(events.write("GET /api/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
    ASSERT_FALSE(events.read_until("\r\n\r\n").empty());
    EXPECT_EQ(listeners->load(), 1u);
  }
  // The hang-up is noticed a moment later.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (listeners->load() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(listeners->load(), 0u);
}

TEST_F(LocalApi, StopEndsOpenConnectionsAndEventStreams) {
  auto& api = make_api();
  api.handle(verb::get, "/api/tunnels", echo_request);
  api.handle_events("/api/events");
  start();
  auto idle = connect();
  ASSERT_EQ(idle.request(verb::get, "/api/tunnels", host()).result(), status::ok);
  auto events = connect();
  ASSERT_FALSE(events.write("GET /api/events HTTP/1.1\r\nHost: " + host() + "\r\n\r\n"));
  ASSERT_FALSE(events.read_until("\r\n\r\n").empty());

  on_server([this] { api_->stop(); });

  EXPECT_EQ(idle.read_to_end(), asio::error::eof);
  EXPECT_EQ(events.read_to_end(), asio::error::eof);
}

TEST(LocalApiStart, NamesTheAddressWhenThePortIsTaken) {
  asio::io_context io;
  tcp::acceptor taken(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const auto address = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
  local_api api(io, address);

  try {
    api.start();
    FAIL() << "start() succeeded on a port in use";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("web interface"));
    EXPECT_THAT(e.what(), HasSubstr(address));
    EXPECT_THAT(e.what(), HasSubstr("Address already in use"));
  }
}

TEST(LocalApiLifetime, CanBeDestroyedWithConnectionsOpenBeforeItsIoContextRunsAgain) {
  asio::io_context io;
  std::optional<local_api> api(std::in_place, io, "127.0.0.1:0");
  api->handle_events("/api/events");
  api->start();
  tcp::socket plain(io);
  plain.connect(api->endpoint());
  tcp::socket events(io);
  events.connect(api->endpoint());
  asio::write(events, asio::buffer(std::string_view("GET /api/events HTTP/1.1\r\nHost: " +
                                                    net::to_string(api->endpoint()) + "\r\n\r\n")));
  io.run_for(std::chrono::milliseconds(200));

  api.reset();
  // The coroutines still suspended are destroyed with the io_context; under
  // AddressSanitizer this test fails if one of them outlives what it uses.
}

TEST(LocalApiAddress, NonIpHostIsRefusedWhenConstructed) {
  asio::io_context io;
  EXPECT_THROW(local_api(io, "inspector.example:4040"), std::invalid_argument);
}

}  // namespace
}  // namespace porthole::client
