// The server's claim logic, what a client asking for tunnels sees: a real
// server on loopback, given a directory whose claims the test answers and a
// clock the test moves, and a client reduced to its control connection.

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "net/frame_io.h"
#include "net/io_loop.h"
#include "net/tls.h"
#include "proto/messages.h"
#include "server/server.h"
#include "support/run_coroutines.h"
#include "support/temporary_directory.h"
#include "unit/server/fake_directory.h"

namespace porthole::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using porthole::testing::fake_directory;
using porthole::testing::temporary_directory;

constexpr auto domain = "example.test";

// A tunnel client's control connection, nothing more: Auth, ReqTunnel and
// CloseTunnel out, the server's messages in (ReqProxy skipped: this client
// never opens proxy connections).
class control_client {
 public:
  control_client(asio::io_context& ioc, const std::filesystem::path& trust_ca)
      : tls_(net::make_client_tls(trust_ca)), stream_(ioc, tls_) {}

  asio::awaitable<proto::auth_resp> connect(net::tcp::endpoint server, std::string client_id) {
    co_await stream_.next_layer().async_connect(server, asio::use_awaitable);
    net::verify_host(stream_.native_handle(), domain);
    co_await stream_.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    proto::auth auth;
    auth.client_id = std::move(client_id);
    co_await send(auth);
    std::optional<proto::message> answer = co_await next();
    EXPECT_TRUE(answer && std::holds_alternative<proto::auth_resp>(*answer));
    co_return answer ? std::get<proto::auth_resp>(*answer) : proto::auth_resp{};
  }

  asio::awaitable<void> send(proto::message m) {
    const net::error_code ec = co_await net::write_message(stream_, proto::encode_framed(m));
    EXPECT_FALSE(ec) << ec.message();
  }

  /// The next message other than ReqProxy; nullopt once the connection ended.
  asio::awaitable<std::optional<proto::message>> next() {
    for (;;) {
      auto [ec, m] = co_await reader_.read(stream_);
      if (ec) {
        co_return std::nullopt;
      }
      if (!std::holds_alternative<proto::req_proxy>(m)) {
        co_return m;
      }
    }
  }

  /// ReqTunnel, and the server's answer to it.
  asio::awaitable<proto::new_tunnel> open(proto::req_tunnel req) {
    co_await send(req);
    std::optional<proto::message> answer = co_await next();
    EXPECT_TRUE(answer && std::holds_alternative<proto::new_tunnel>(*answer));
    co_return answer ? std::get<proto::new_tunnel>(*answer) : proto::new_tunnel{};
  }

  /// The client goes away without a word, as a dropped connection does.
  void drop() { net::close_stream(stream_); }

 private:
  asio::ssl::context tls_;
  net::tls_stream stream_;
  net::frame_reader reader_;
};

proto::req_tunnel http_tunnel(std::string subdomain = "") {
  proto::req_tunnel req;
  req.req_id = "r1";
  req.protocol = "http";
  req.subdomain = std::move(subdomain);
  return req;
}

class ServerClaimsTest : public ::testing::Test {
 protected:
  ServerClaimsTest() {
    cfg_.domain = domain;
    cfg_.dev = true;
    cfg_.state_dir = dir_.path();
    cfg_.tunnel_addr = "127.0.0.1:0";
    cfg_.http_addr = "127.0.0.1:0";
    cfg_.https_addr = "";
    cfg_.admin_addr = "";
    cfg_.reconnect_grace = 60s;
  }

  ~ServerClaimsTest() override {
    clients_.clear();
    if (server_) {
      server_->stop();
    }
    ioc_.destroy_pending();
  }

  /// Starts the server on `names` (nullptr: a single node's own directory).
  void start(std::shared_ptr<directory> names) {
    server_.emplace(ioc_, cfg_, std::move(names), [this] { return now_; });
    server_->start();
  }

  control_client& connect(std::string client_id = "") {
    clients_.push_back(
        std::make_unique<control_client>(ioc_, net::dev_ca_certificate(dir_.path())));
    control_client& c = *clients_.back();
    last_id_ =
        run(c.connect(server_->listening_addresses().tunnel, std::move(client_id))).client_id;
    return c;
  }

  std::string url_of(std::string_view host) const {
    return make_url("http", host, server_->listening_addresses().http->port());
  }

  template <class T>
  T run(asio::awaitable<T> task) {
    return porthole::testing::run(ioc_, std::move(task));
  }

  template <class Done>
  void run_until(Done done) {
    porthole::testing::run_until(ioc_, done, 10s);
  }

  net::io_loop ioc_{1};
  temporary_directory dir_;
  server_config cfg_;
  directory::clock::time_point now_{std::chrono::hours(1)};  ///< the server's clock
  std::optional<server> server_;
  std::vector<std::unique_ptr<control_client>> clients_;
  std::string last_id_;  ///< the client id the last connect() was given
};

TEST_F(ServerClaimsTest, ARandomNameThatLostItsRaceIsRetriedUnderAnotherName) {
  auto names = std::make_shared<fake_directory>();
  names->script({{claim_outcome::live_elsewhere}});
  start(names);
  control_client& client = connect();

  const proto::new_tunnel got = run(client.open(http_tunnel()));

  ASSERT_EQ(got.error, "");
  ASSERT_EQ(names->claims().size(), 2u);
  const std::string& lost = names->claims()[0].name;
  const std::string& won = names->claims()[1].name;
  EXPECT_NE(lost, won);
  EXPECT_TRUE(won.ends_with(std::string(".") + domain)) << won;
  EXPECT_EQ(got.url, url_of(won));
  EXPECT_EQ(got.req_id, "r1");
  EXPECT_NE(server_->find_route("http", won).local, nullptr);
}

TEST_F(ServerClaimsTest, ANamedSubdomainLiveForAnotherClientIsRefusedWithNgrokdsWords) {
  auto names = std::make_shared<fake_directory>();
  names->script({{claim_outcome::live_elsewhere}});
  start(names);
  control_client& client = connect();

  const proto::new_tunnel got = run(client.open(http_tunnel("foo")));

  EXPECT_EQ(got.error, "The tunnel " + url_of("foo.example.test") +
                           " is already registered by another client.");
  EXPECT_EQ(got.url, "");
  EXPECT_EQ(names->claims().size(), 1u);  // a name the client chose is not swapped for another
}

TEST_F(ServerClaimsTest, ANamedSubdomainHeldForAnotherClientIsRefusedUntilItsGraceEnds) {
  auto names = std::make_shared<fake_directory>();
  names->script({{claim_outcome::held_elsewhere}});
  start(names);
  control_client& client = connect();

  const proto::new_tunnel got = run(client.open(http_tunnel("foo")));

  EXPECT_TRUE(got.error.starts_with("The tunnel " + url_of("foo.example.test") +
                                    " is already registered: it is held for another client"))
      << got.error;
}

TEST_F(ServerClaimsTest, AnUnreachableRegistryRefusesWithTheRegistryUnavailableError) {
  auto names = std::make_shared<fake_directory>();
  names->script({{claim_outcome::unavailable, "etcd: connection refused"}});
  start(names);
  control_client& client = connect();

  const proto::new_tunnel got = run(client.open(http_tunnel()));

  EXPECT_TRUE(got.error.starts_with(proto::registry_unavailable)) << got.error;
  EXPECT_NE(got.error.find("etcd: connection refused"), std::string::npos) << got.error;
  EXPECT_EQ(names->claims().size(), 1u);  // another random name would fail the same way
}

TEST_F(ServerClaimsTest, AClaimWonAfterItsSessionEndedIsReleasedNotRouted) {
  auto names = std::make_shared<fake_directory>();
  names->script({{claim_outcome::won, "", true}});
  start(names);
  control_client& first = connect();
  const std::string id = last_id_;
  run(first.send(http_tunnel("foo")));
  run_until([&] { return names->claims().size() == 1; });

  // The client reconnects while its claim is on its way: the server ends the
  // old session before it answers the new connection's Auth.
  connect(id);
  now_ += 5min;
  names->let_through();
  run_until([&] { return names->releases().size() == 1; });

  EXPECT_EQ(names->releases()[0].url, url_of("foo.example.test"));
  EXPECT_EQ(names->releases()[0].hold_until, now_ + cfg_.reconnect_grace);
  EXPECT_EQ(server_->find_route("http", "foo.example.test").local, nullptr);
  std::optional<proto::message> told;
  do {
    told = run(first.next());
    EXPECT_FALSE(told && std::holds_alternative<proto::new_tunnel>(*told));
  } while (told);
}

TEST_F(ServerClaimsTest, ADroppedClientsNamesAreHeldForTheGracePeriodOnTheServersClock) {
  auto names = std::make_shared<fake_directory>();
  start(names);
  control_client& client = connect();
  ASSERT_EQ(run(client.open(http_tunnel("foo"))).error, "");

  now_ += 5min;
  client.drop();
  run_until([&] { return names->releases().size() == 1; });

  EXPECT_EQ(names->releases()[0].url, url_of("foo.example.test"));
  EXPECT_EQ(names->releases()[0].client_id, last_id_);
  EXPECT_EQ(names->releases()[0].hold_until, now_ + cfg_.reconnect_grace);
}

TEST_F(ServerClaimsTest, CloseTunnelGivesTheNameUpAtOnceOnTheServersClock) {
  auto names = std::make_shared<fake_directory>();
  start(names);
  control_client& client = connect();
  const proto::new_tunnel opened = run(client.open(http_tunnel("foo")));
  ASSERT_EQ(opened.error, "");

  now_ += 5min;
  run(client.send(proto::close_tunnel{opened.url}));
  run_until([&] { return names->releases().size() == 1; });

  EXPECT_EQ(names->releases()[0].url, opened.url);
  EXPECT_EQ(names->releases()[0].hold_until, now_);
}

// The single node's own directory measures holds on the server's clock too.
TEST_F(ServerClaimsTest, AHeldNameGoesToAnotherClientOnceTheServersClockPassesTheGrace) {
  start(nullptr);
  control_client& leaving = connect();
  ASSERT_EQ(run(leaving.open(http_tunnel("foo"))).error, "");
  leaving.drop();
  run_until([&] { return server_->find_route("http", "foo.example.test").held; });
  control_client& other = connect();

  now_ += cfg_.reconnect_grace - 1s;
  const proto::new_tunnel refused = run(other.open(http_tunnel("foo")));
  now_ += 2s;
  const proto::new_tunnel got = run(other.open(http_tunnel("foo")));

  EXPECT_NE(refused.error.find("held for another client"), std::string::npos) << refused.error;
  EXPECT_EQ(got.error, "");
  EXPECT_EQ(got.url, url_of("foo.example.test"));
}

}  // namespace
}  // namespace porthole::server
