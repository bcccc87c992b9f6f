#include "net/shards.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "net/tls.h"
#include "support/temporary_directory.h"

namespace porthole::net {
namespace {

namespace ssl = asio::ssl;

// A connected pair of TCP sockets on `ioc`.
std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& ioc) {
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket a(ioc);
  a.connect(acceptor.local_endpoint());
  tcp::socket b = acceptor.accept();
  return {std::move(a), std::move(b)};
}

// Runs `task` on `ex` to its end, from a coroutine on the caller's loop.
template <class T>
asio::awaitable<T> on(asio::any_io_executor ex, asio::awaitable<T> task) {
  co_return co_await asio::co_spawn(ex, std::move(task), asio::use_awaitable);
}

// Runs `test` on `ioc` (its shards running beside), rethrowing what escaped
// it; 20 s guard against a hang.
void run_to_end(asio::io_context& ioc, asio::awaitable<void> test) {
  std::exception_ptr failed;
  asio::co_spawn(ioc, std::move(test), [&](std::exception_ptr e) { failed = e; });
  ioc.run_for(std::chrono::seconds(20));
  if (failed) {
    std::rethrow_exception(failed);
  }
}

TEST(Shards, ShardZeroIsTheCallersLoopAndTheOthersRunOnThreadsOfTheirOwn) {
  asio::io_context ioc;
  shards all(ioc, 3);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.executor(0), asio::any_io_executor(ioc.get_executor()));
  EXPECT_EQ(all.executor(3), all.executor(0));
  std::set<std::thread::id> seen;
  for (std::size_t i = 1; i < all.size(); ++i) {
    std::promise<std::thread::id> where;
    asio::post(all.executor(i), [&where] { where.set_value(std::this_thread::get_id()); });
    seen.insert(where.get_future().get());
  }
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_FALSE(seen.contains(std::this_thread::get_id()));
}

asio::awaitable<std::tuple<std::string, std::thread::id>> read_there(tls_stream& s, std::size_t n) {
  std::string got(n, '\0');
  co_await asio::async_read(s, asio::buffer(got), asio::use_awaitable);
  co_await asio::async_write(s, asio::buffer(std::string("reply")), asio::use_awaitable);
  co_return std::tuple{got, std::this_thread::get_id()};
}

TEST(Shards, AMovedTlsStreamGoesOnOnItsNewThreadWithWhatItHadAlreadyRead) {
  porthole::testing::temporary_directory dir;
  const dev_certificates dev = ensure_dev_certificates(dir.path() / "state", "localhost");
  ssl::context server_tls = make_server_tls(dev.server_cert, dev.server_key);
  ssl::context client_tls = make_client_tls(dev.ca_cert);
  asio::io_context ioc;
  shards all(ioc, 2);
  auto [a, b] = socket_pair(ioc);
  tls_stream client(std::move(a), client_tls);
  tls_stream server(std::move(b), server_tls);
  std::string first, rest, reply;
  std::thread::id rest_read_on;
  auto test = [&]() -> asio::awaitable<void> {
    using namespace std::string_literals;
    using namespace asio::experimental::awaitable_operators;
    co_await (client.async_handshake(ssl::stream_base::client, asio::use_awaitable) &&
              server.async_handshake(ssl::stream_base::server, asio::use_awaitable));
    // Two records in one write: the server reads the first few bytes here,
    // and the rest is already inside its TLS stream when it moves.
    co_await asio::async_write(client, asio::buffer("first"s), asio::use_awaitable);
    co_await asio::async_write(client, asio::buffer("and the rest"s), asio::use_awaitable);
    first.resize(5);
    co_await asio::async_read(server, asio::buffer(first), asio::use_awaitable);
    move_to(server, all.executor(1));
    std::tie(rest, rest_read_on) = co_await on(all.executor(1), read_there(server, 12));
    reply.resize(5);
    co_await asio::async_read(client, asio::buffer(reply), asio::use_awaitable);
  };
  run_to_end(ioc, test());
  EXPECT_EQ(first, "first");
  EXPECT_EQ(rest, "and the rest");
  EXPECT_EQ(reply, "reply");
  EXPECT_NE(rest_read_on, std::this_thread::get_id());
}

// A socket it owns, as a channel.
class owned_socket : public channel {
 public:
  explicit owned_socket(tcp::socket s) : s_(std::move(s)), c_(s_) {}
  asio::awaitable<std::tuple<error_code, std::size_t>> read_some(asio::mutable_buffer b) override {
    seen_on = std::this_thread::get_id();
    co_return co_await c_.read_some(b);
  }
  asio::awaitable<void> wait_readable() override { co_await c_.wait_readable(); }
  asio::awaitable<error_code> write(asio::const_buffer b) override {
    seen_on = std::this_thread::get_id();
    co_return co_await c_.write(b);
  }
  bool can_half_close() const override { return true; }
  void shutdown_send() override { c_.shutdown_send(); }
  void close() override { c_.close(); }
  std::atomic<std::thread::id> seen_on;

 private:
  tcp::socket s_;
  socket_channel c_;
};

TEST(Shards, AShardChannelRunsEachOperationOnItsShard) {
  asio::io_context ioc;
  shards all(ioc, 2);
  auto [near, far] = socket_pair(ioc);
  move_to(far, all.executor(1));
  auto inner = std::make_shared<owned_socket>(std::move(far));
  std::string got, eof_error;
  std::thread::id used_on;
  auto test = [&]() -> asio::awaitable<void> {
    using namespace std::string_literals;
    shard_channel remote(all.executor(1), inner);
    EXPECT_TRUE(remote.can_half_close());
    co_await remote.write(asio::buffer("ping"s));
    std::string ping(4, '\0');
    co_await asio::async_read(near, asio::buffer(ping), asio::use_awaitable);
    EXPECT_EQ(ping, "ping");
    co_await asio::async_write(near, asio::buffer("pong"s), asio::use_awaitable);
    got.resize(4);
    auto [ec, n] = co_await remote.read_some(asio::buffer(got));
    got.resize(n);
    used_on = inner->seen_on;
    remote.close();
    char byte = 0;
    auto [rec, rn] = co_await near.async_read_some(asio::buffer(&byte, 1), use_nothrow);
    eof_error = rec.message();
  };
  run_to_end(ioc, test());
  EXPECT_EQ(got, "pong");
  EXPECT_NE(used_on, std::this_thread::get_id());
  EXPECT_EQ(eof_error, error_code(asio::error::eof).message());
}

TEST(Shards, CancellingAShardChannelReadClosesTheChannelInsteadOfHanging) {
  asio::io_context ioc;
  shards all(ioc, 2);
  auto [near, far] = socket_pair(ioc);
  move_to(far, all.executor(1));
  auto inner = std::make_shared<owned_socket>(std::move(far));
  bool timer_won = false;
  std::string eof_error;
  auto test = [&]() -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    shard_channel remote(all.executor(1), inner);
    std::string buffer(16, '\0');
    asio::steady_timer timer(ioc, std::chrono::milliseconds(50));
    // Nothing comes: the timer wins and the read is cancelled.
    auto got =
        co_await (remote.read_some(asio::buffer(buffer)) || timer.async_wait(asio::use_awaitable));
    timer_won = got.index() == 1;
    char byte = 0;
    auto [rec, rn] = co_await near.async_read_some(asio::buffer(&byte, 1), use_nothrow);
    eof_error = rec.message();
  };
  run_to_end(ioc, test());
  EXPECT_TRUE(timer_won);
  EXPECT_EQ(eof_error, error_code(asio::error::eof).message());
}

}  // namespace
}  // namespace porthole::net
