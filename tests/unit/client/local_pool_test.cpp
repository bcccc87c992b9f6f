#include "client/local_pool.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <vector>

#include "support/run_coroutines.h"

namespace porthole::client {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

/// Connected pairs on loopback: the pool keeps `near`, the test plays the
/// local service with `far`.
class local_pool_test : public ::testing::Test {
 protected:
  struct pair {
    tcp::socket near;
    tcp::socket far;
  };

  pair connect() {
    tcp::socket near(io_);
    near.connect(acceptor_.local_endpoint());
    tcp::socket far = acceptor_.accept();
    return {std::move(near), std::move(far)};
  }

  std::shared_ptr<local_pool> make(local_pool_limits limits) {
    return std::make_shared<local_pool>(io_.get_executor(), limits);
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
};

TEST_F(local_pool_test, hands_back_the_most_recently_kept_connection_of_that_address) {
  auto pool = make({});
  auto a = connect();
  auto b = connect();
  const auto b_port = b.near.local_endpoint().port();
  pool->put("svc:80", std::move(a.near));
  pool->put("svc:80", std::move(b.near));
  EXPECT_EQ(pool->idle(), 2u);
  EXPECT_FALSE(pool->take("other:80"));
  auto got = pool->take("svc:80");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->local_endpoint().port(), b_port);
  EXPECT_EQ(pool->idle(), 1u);
}

TEST_F(local_pool_test, keeps_at_most_per_address_and_closes_the_oldest) {
  auto pool = make({.per_address = 2});
  std::vector<pair> pairs;
  for (int i = 0; i < 3; ++i) {
    pairs.push_back(connect());
  }
  const auto newest = pairs[2].near.local_endpoint().port();
  const auto middle = pairs[1].near.local_endpoint().port();
  for (auto& p : pairs) {
    pool->put("svc:80", std::move(p.near));
  }
  EXPECT_EQ(pool->idle(), 2u);
  // The oldest was closed: its service sees the end of the connection.
  char byte = 0;
  boost::system::error_code ec;
  pairs[0].far.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_EQ(pool->take("svc:80")->local_endpoint().port(), newest);
  EXPECT_EQ(pool->take("svc:80")->local_endpoint().port(), middle);
  EXPECT_FALSE(pool->take("svc:80"));
}

TEST_F(local_pool_test, per_address_zero_keeps_nothing) {
  auto pool = make({.per_address = 0});
  auto a = connect();
  pool->put("svc:80", std::move(a.near));
  EXPECT_EQ(pool->idle(), 0u);
  EXPECT_FALSE(pool->take("svc:80"));
}

TEST_F(local_pool_test, a_connection_the_service_wrote_on_while_idle_is_not_handed_out) {
  auto pool = make({});
  auto a = connect();
  const int fd = a.near.native_handle();
  pool->put("svc:80", std::move(a.near));
  asio::write(a.far, asio::buffer("HTTP/1.1 408 Request Timeout\r\n\r\n", 33));
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_FALSE(pool->take("svc:80"));
  EXPECT_EQ(pool->idle(), 0u);
}

TEST_F(local_pool_test, a_connection_the_service_closed_is_not_handed_out) {
  auto pool = make({});
  auto a = connect();
  const int fd = a.near.native_handle();
  pool->put("svc:80", std::move(a.near));
  a.far.close();
  // The close has reached the kernel; the io_context has not run since.
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_FALSE(pool->take("svc:80"));
  EXPECT_EQ(pool->idle(), 0u);
}

TEST_F(local_pool_test, a_taken_connection_still_works) {
  auto pool = make({});
  auto a = connect();
  pool->put("svc:80", std::move(a.near));
  auto got = pool->take("svc:80");
  ASSERT_TRUE(got);
  asio::write(*got, asio::buffer("ping", 4));
  char buf[4] = {};
  asio::read(a.far, asio::buffer(buf, 4));
  EXPECT_EQ(std::string_view(buf, 4), "ping");
}

TEST_F(local_pool_test, idle_connections_expire_after_the_idle_timeout) {
  auto pool = make({.per_address = 4, .idle_timeout = 50ms});
  auto a = connect();
  pool->put("svc:80", std::move(a.near));
  // The sweep closes it without anyone asking for a connection.
  testing::run_until(io_, [&] { return pool->idle() == 0; });
  char byte = 0;
  boost::system::error_code ec;
  a.far.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

}  // namespace
}  // namespace porthole::client
