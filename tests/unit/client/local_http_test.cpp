#include "client/local_http.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <string>
#include <vector>

#include "support/run_coroutines.h"

namespace porthole::client {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using net::use_nothrow;

/// A local service that records every byte each connection brings and
/// answers each request head it sees with a 2-byte 200 (no body parsing: a
/// request that smuggles a second one is seen as two).
struct recording_service {
  explicit recording_service(asio::io_context& io)
      : acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
        port(acceptor.local_endpoint().port()) {
    asio::co_spawn(io, accept_loop(), asio::detached);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(use_nothrow);
      if (ec) {
        co_return;
      }
      received.emplace_back();
      asio::co_spawn(acceptor.get_executor(), serve(std::move(sock), received.size() - 1),
                     asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket sock, std::size_t n) {
    char buf[4096];
    std::size_t answered = 0;
    for (;;) {
      auto [ec, got] = co_await sock.async_read_some(asio::buffer(buf), use_nothrow);
      if (ec) {
        co_return;
      }
      received[n].append(buf, got);
      // Answers each head ("\r\n\r\n") seen so far.
      std::size_t heads = 0;
      for (std::size_t at = received[n].find("\r\n\r\n"); at != std::string::npos;
           at = received[n].find("\r\n\r\n", at + 4)) {
        ++heads;
      }
      for (; answered < heads; ++answered) {
        static const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        co_await asio::async_write(sock, asio::buffer(ok), use_nothrow);
      }
    }
  }

  tcp::acceptor acceptor;
  std::uint16_t port;
  std::vector<std::string> received;  ///< per accepted connection
};

class local_http_test : public ::testing::Test {
 protected:
  /// Runs forward_http over a loopback pair: the test writes `request` as the
  /// tunnel's bytes, half-closes, and gets back what the public side reads.
  std::string through(const std::string& request) {
    tcp::acceptor tunnel_acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket public_side(io_);
    public_side.connect(tunnel_acceptor.local_endpoint());
    tcp::socket tunnel_side = tunnel_acceptor.accept();
    asio::write(public_side, asio::buffer(request));
    public_side.shutdown(tcp::socket::shutdown_send);
    net::socket_channel tunnel(tunnel_side);
    local_http_target target{"127.0.0.1", std::to_string(service_.port), "http://t.example"};
    last_ = testing::run(io_, forward_http(tunnel, pool_, target));
    std::string out;
    boost::system::error_code ec;
    asio::read(public_side, asio::dynamic_buffer(out), ec);
    return out;
  }

  asio::io_context io_;
  local_http_totals last_;  ///< what the last through() did
  recording_service service_{io_};
  std::shared_ptr<local_pool> pool_ =
      std::make_shared<local_pool>(io_.get_executor(), local_pool_limits{});
};

TEST_F(local_http_test, sequential_requests_share_one_kept_connection) {
  EXPECT_EQ(through("GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(through("GET /c HTTP/1.1\r\nHost: t\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_EQ(service_.received.size(), 1u);
  EXPECT_EQ(service_.received[0],
            "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n"
            "GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(pool_->idle(), 1u);
  EXPECT_EQ(last_.requests, 1u);
  EXPECT_EQ(last_.reused, 1u);
  EXPECT_EQ(last_.dials, 0u);
}

TEST_F(local_http_test, a_request_the_strict_parser_refuses_never_uses_a_kept_connection) {
  // A kept connection first.
  through("GET /warm HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(pool_->idle(), 1u);
  // Content-Length and Transfer-Encoding both: the classic way to make two
  // parsers disagree on where a request ends (and smuggle the next one onto
  // a connection another client's requests share).
  const std::string smuggler =
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
  through(smuggler);
  EXPECT_EQ(last_.reused, 0u);
  EXPECT_EQ(last_.dials, 1u);
  // It went, as bytes, on a connection of its own, which was not kept.
  ASSERT_EQ(service_.received.size(), 2u);
  EXPECT_EQ(service_.received[1], smuggler);
  EXPECT_EQ(service_.received[0], "GET /warm HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(pool_->idle(), 1u);
}

TEST_F(local_http_test, a_public_connection_close_is_not_passed_to_the_service) {
  // The answer says close, as the public client asked.
  EXPECT_EQ(through("GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  ASSERT_EQ(service_.received.size(), 1u);
  EXPECT_EQ(service_.received[0], "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(pool_->idle(), 1u);
}

TEST_F(local_http_test, an_unreachable_service_gets_a_502_page) {
  service_.acceptor.close();
  const std::string out = through("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(out.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << out;
  EXPECT_NE(out.find("could not reach the local service"), std::string::npos);
}

}  // namespace
}  // namespace porthole::client
