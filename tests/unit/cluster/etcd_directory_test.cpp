// The directory of a cluster against a real etcd (/usr/bin/etcd): two
// etcd_directory objects are two nodes sharing one namespace.

#include "cluster/etcd_directory.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>

#include "cluster/etcd_client.h"
#include "support/run_coroutines.h"
#include "support/temporary_directory.h"
#include "unit/cluster/etcd_process.h"

namespace porthole::cluster {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using porthole::testing::etcd_process;
using porthole::testing::temporary_directory;
using server::claim_outcome;
using server::tunnel;

class EtcdDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(porthole::testing::etcd_program)) {
      FAIL() << "etcd is not installed at " << porthole::testing::etcd_program
             << ": install it with scripts/install-deps (etcd-server, etcd-client)";
    }
    etcd_.emplace(dir_.path());
  }

  etcd_options to_etcd() const {
    etcd_options o;
    o.endpoints = {{"127.0.0.1", etcd_->port()}};
    o.request_timeout = 1000ms;
    return o;
  }

  std::shared_ptr<etcd_directory> node(const std::string& id, std::chrono::seconds ttl = 5s) {
    const etcd_options o = to_etcd();
    etcd_directory::options d;
    d.lease_ttl = ttl;
    d.request_timeout = o.request_timeout;
    auto dir = std::make_shared<etcd_directory>(
        io_.get_executor(), std::make_shared<etcd_client>(io_.get_executor(), o), d);
    run(dir->join({id, "127.0.0.1:7" + id.substr(1), "127.0.0.1:4" + id.substr(1)}));
    return dir;
  }

  template <class T>
  T run(asio::awaitable<T> task) {
    return porthole::testing::run(io_, std::move(task));
  }

  template <class Done>
  void run_until(Done done) {
    porthole::testing::run_until(io_, done);
  }

  static std::shared_ptr<tunnel> http(const std::string& host, const std::string& client) {
    auto t = std::make_shared<tunnel>();
    t->url = "http://" + host;
    t->protocol = "http";
    t->host = host;
    t->client_id = client;
    return t;
  }

  // A tunnel of `client`'s standby connection on another node.
  static std::shared_ptr<tunnel> standby_http(const std::string& host, const std::string& client) {
    auto t = http(host, client);
    t->standby = true;
    return t;
  }

  // `client`'s standby connection's tunnel for `host` on node `d`, once `d`
  // serves the name with it.
  std::shared_ptr<tunnel> standing_by(etcd_directory& d, const std::string& host,
                                      const std::string& client) {
    auto t = standby_http(host, client);
    EXPECT_TRUE(run(d.stand_by(host, {client, "token"}, {t})));
    run_until([&] { return d.find("http", host).local != nullptr; });
    return t;
  }

  server::claim_answer claim(etcd_directory& d, const std::string& host, const std::string& client,
                             std::shared_ptr<tunnel> t = nullptr) {
    if (!t) {
      t = http(host, client);
    }
    last_ = t;
    return run(d.claim(host, {client, "token"}, {t}));
  }

  temporary_directory dir_;
  asio::io_context io_;
  std::optional<etcd_process> etcd_;
  std::shared_ptr<tunnel> last_;
};

TEST_F(EtcdDirectoryTest, ANameClaimedOnOneNodeRoutesThereFromTheOther) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  const auto won = claim(*n1, "app.example.com", "a");
  ASSERT_TRUE(won.won()) << won.error;
  EXPECT_EQ(n1->find("http", "app.example.com").local, last_);
  run_until([&] { return n2->find("http", "app.example.com").remote.has_value(); });
  const auto there = n2->find("http", "app.example.com");
  EXPECT_EQ(there.remote->node_id, "n1");
  EXPECT_EQ(there.remote->node_addr, "127.0.0.1:71");
  EXPECT_EQ(there.remote->revision, won.revision);
  EXPECT_EQ(n1->find("http", "app.example.com").revision, won.revision);
}

TEST_F(EtcdDirectoryTest, AnotherClientCannotTakeANameOnAnotherNode) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  EXPECT_EQ(claim(*n2, "app.example.com", "b").outcome, claim_outcome::live_elsewhere);
}

TEST_F(EtcdDirectoryTest, TheSameClientTakesItsNameOverOnAnotherNodeAtOnce) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  const auto first = claim(*n1, "app.example.com", "a");
  ASSERT_TRUE(first.won());
  const auto moved = claim(*n2, "app.example.com", "a");
  ASSERT_TRUE(moved.won()) << moved.error;
  EXPECT_GT(moved.revision, first.revision);
  EXPECT_EQ(n2->find("http", "app.example.com").local, last_);
  // The old node learns it lost the name (a watch event, confirmed by a read).
  run_until([&] { return n1->find("http", "app.example.com").remote.has_value(); });
  EXPECT_EQ(n1->find("http", "app.example.com").remote->node_id, "n2");
  EXPECT_EQ(n1->find("http", "app.example.com").local, nullptr);
}

TEST_F(EtcdDirectoryTest, ANameLiveOnAnotherNodeIsOfferedBackToItsClient) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  run_until([&] { return !n2->held_by("a").empty(); });
  EXPECT_EQ(n2->held_by("a").front().name, "app.example.com");
  EXPECT_TRUE(n2->held_by("b").empty());
}

TEST_F(EtcdDirectoryTest, AReleasedNameIsHeldForItsClientThenFreed) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  n1->release(*last_, server::directory::clock::now() + 1500ms);
  run_until([&] { return n2->find("http", "app.example.com").held; });
  EXPECT_EQ(claim(*n2, "app.example.com", "b").outcome, claim_outcome::held_elsewhere);
  // Once the hold ends the owner's node deletes the key.
  run_until([&] { return n2->is_free("app.example.com") && n1->is_free("app.example.com"); });
  EXPECT_TRUE(claim(*n2, "app.example.com", "b").won());
}

TEST_F(EtcdDirectoryTest, AStandbyServesTheNameOnlyWhileItsClientHoldsIt) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  auto standby = standby_http("app.example.com", "a");
  // Another client, or another token, cannot stand by for it.
  EXPECT_FALSE(run(n2->stand_by("app.example.com", {"b", "token"}, {standby})));
  EXPECT_FALSE(run(n2->stand_by("app.example.com", {"a", "other"}, {standby})));
  // Nor can the node of the claim itself.
  EXPECT_FALSE(run(n1->stand_by("app.example.com", {"a", "token"}, {standby})));
  ASSERT_TRUE(run(n2->stand_by("app.example.com", {"a", "token"}, {standby})));
  run_until([&] { return n2->find("http", "app.example.com").local != nullptr; });
  EXPECT_EQ(n2->find("http", "app.example.com").local, standby);
  EXPECT_EQ(n2->find("https", "app.example.com").local, nullptr);
  // Promoted: a claim on the standby's node takes the name over.
  standby->standby = false;
  const auto taken = run(n2->claim("app.example.com", {"a", "token"}, {standby}));
  ASSERT_TRUE(taken.won()) << taken.error;
  EXPECT_EQ(n2->find("http", "app.example.com").local, standby);
  EXPECT_EQ(n2->find("http", "app.example.com").revision, taken.revision);
}

TEST_F(EtcdDirectoryTest, AStandbyServesWhileTheWatchShowsItsPromotionBeforeTheClaimEnds) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  auto standby = standing_by(*n2, "app.example.com", "a");
  // The promotion's write, as n2's claim makes it, reaches n2 by the watch
  // before the claim's own answer does (one connection each).
  etcd_client raw(io_.get_executor(), to_etcd());
  const std::string key = "/porthole/names/app.example.com";
  auto read = run(raw.range(key));
  ASSERT_TRUE(read && read.value.kvs.size() == 1);
  std::string value = read.value.kvs.front().value;
  const auto at = value.find(R"("node":"n1")");
  ASSERT_NE(at, std::string::npos) << value;
  value.replace(at, 11, R"("node":"n2")");
  ASSERT_TRUE(run(raw.put(key, value)));
  // A later change, seen by n2 after the first one (one watch, in order).
  ASSERT_TRUE(claim(*n1, "later.example.com", "b").won());
  run_until([&] { return n2->find("http", "later.example.com").remote.has_value(); });
  // Still served by the standby connection: not a 503 while the claim ends.
  const auto during = n2->find("http", "app.example.com");
  EXPECT_EQ(during.local, standby);
  EXPECT_FALSE(during.held);
}

TEST_F(EtcdDirectoryTest, AStandbyStopsServingANameAnotherClientClaimed) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  auto standby = standing_by(*n2, "app.example.com", "a");
  // Client a gives the name up on n1; client b claims it there.
  n1->release(*last_, server::directory::clock::now());
  run_until([&] { return n1->is_free("app.example.com"); });
  ASSERT_TRUE(claim(*n1, "app.example.com", "b").won());
  run_until([&] { return n2->find("http", "app.example.com").remote.has_value(); });
  EXPECT_EQ(n2->find("http", "app.example.com").local, nullptr);
  // Its release is local: the name stays b's.
  n2->release(*standby, server::directory::clock::now());
  EXPECT_FALSE(n2->is_free("app.example.com"));
  EXPECT_EQ(claim(*n2, "app.example.com", "c").outcome, claim_outcome::live_elsewhere);
}

TEST_F(EtcdDirectoryTest, ASchemeGivenUpWhileAnotherIsLiveIsWaitedForElsewhere) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  auto plain = http("app.example.com", "a");
  auto secure = http("app.example.com", "a");
  secure->protocol = "https";
  secure->url = "https://app.example.com";
  ASSERT_TRUE(run(n1->claim("app.example.com", {"a", "token"}, {plain, secure})).won());
  // A node releasing a client's schemes one after the other (a disconnect).
  n1->release(*plain, server::directory::clock::now() + 5s);
  run_until([&] { return n2->find("http", "app.example.com").held; });
  const auto between = n2->find("http", "app.example.com");
  EXPECT_TRUE(between.moving);  // a request waits for the next word, not a 404
  EXPECT_TRUE(n2->find("https", "app.example.com").remote.has_value());
}

TEST_F(EtcdDirectoryTest, AReleaseWithoutGraceFreesTheNameEverywhere) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  run_until([&] { return !n2->is_free("app.example.com"); });
  n1->release(*last_, server::directory::clock::now());
  run_until([&] { return n2->is_free("app.example.com"); });
  EXPECT_TRUE(claim(*n2, "app.example.com", "b").won());
}

TEST_F(EtcdDirectoryTest, ANodeThatLeavesTakesItsNamesWithIt) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  ASSERT_TRUE(claim(*n1, "app.example.com", "a").won());
  run_until([&] { return !n2->is_free("app.example.com"); });
  run(n1->leave(server::directory::clock::now()));
  run_until([&] { return n2->is_free("app.example.com"); });
  EXPECT_EQ(n2->other_nodes().size(), 0u);
}

TEST_F(EtcdDirectoryTest, ASecondNodeWithTheSameIdIsRefused) {
  auto n1 = node("n1");
  try {
    node("n1");
    FAIL() << "joined twice";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("node id 'n1'"), std::string::npos) << e.what();
  }
}

TEST_F(EtcdDirectoryTest, TellsClientsTheOtherNodes) {
  auto n1 = node("n1");
  auto n2 = node("n2");
  run_until([&] { return n1->other_nodes().size() == 1; });
  EXPECT_EQ(n1->other_nodes(), std::vector<std::string>{"127.0.0.1:42"});
}

TEST_F(EtcdDirectoryTest, ClaimsFailClearlyWhileEtcdCannotBeReached) {
  auto n1 = node("n1");
  etcd_->kill();
  const auto got = claim(*n1, "app.example.com", "a");
  EXPECT_EQ(got.outcome, claim_outcome::unavailable);
  EXPECT_FALSE(got.error.empty());
}

}  // namespace
}  // namespace porthole::cluster
