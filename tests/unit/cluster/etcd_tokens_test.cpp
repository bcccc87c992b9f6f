// The authtokens of a cluster against a real etcd (/usr/bin/etcd): the store
// the token commands use (etcd_tokens) and what a node accepts while it
// follows them (etcd_token_source, through the server's authtokens).

#include "cluster/etcd_tokens.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

#include "cluster/etcd_token_source.h"
#include "cluster/etcd_token_store.h"
#include "server/authtokens.h"
#include "support/captured_log.h"
#include "support/run_coroutines.h"
#include "support/temporary_directory.h"
#include "unit/cluster/etcd_process.h"

namespace porthole::cluster {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using porthole::testing::etcd_process;
using porthole::testing::temporary_directory;
using server::token_record;
using server::token_request;

token_request named(std::string name, std::vector<std::string> subdomains = {}) {
  token_request r;
  r.name = std::move(name);
  r.subdomains = std::move(subdomains);
  return r;
}

class EtcdTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(porthole::testing::etcd_program)) {
      FAIL() << "etcd is not installed at " << porthole::testing::etcd_program
             << ": install it with scripts/install-deps (etcd-server, etcd-client)";
    }
    etcd_.emplace(dir_.path());
  }

  std::shared_ptr<etcd_client> client() {
    etcd_options o;
    o.endpoints = {{"127.0.0.1", etcd_->port()}};
    o.request_timeout = 1000ms;
    return std::make_shared<etcd_client>(io_.get_executor(), o);
  }

  etcd_tokens store() { return etcd_tokens(client(), "/porthole/"); }

  template <class T>
  T run(asio::awaitable<T> task) {
    return porthole::testing::run(io_, std::move(task));
  }

  template <class Done>
  void run_until(Done done) {
    porthole::testing::run_until(io_, done);
  }

  std::pair<std::string, token_record> add(etcd_tokens& s, token_request req) {
    auto r = run(s.add(std::move(req)));
    EXPECT_TRUE(r) << (r ? "" : r.error->message);
    return r.value;
  }

  std::vector<token_record> listed(etcd_tokens& s) {
    auto r = run(s.list());
    EXPECT_TRUE(r) << (r ? "" : r.error->message);
    return r.value.snapshot.tokens;
  }

  /// A node's view: the tokens of etcd followed, as the server reads them.
  std::shared_ptr<etcd_token_source> follower() {
    etcd_token_source::options o;
    o.retry_delay = 100ms;
    auto s = store();
    auto first = run(s.list());
    EXPECT_TRUE(first);
    auto source = std::make_shared<etcd_token_source>(io_.get_executor(), client(), "/porthole/",
                                                      "test etcd", o);
    source->start(std::move(first.value));
    followers_.push_back(source);
    return source;
  }

  void TearDown() override {
    for (auto& f : followers_) {
      f->stop();
    }
    io_.restart();
    io_.run_for(20ms);
  }

  temporary_directory dir_;
  asio::io_context io_;
  std::optional<etcd_process> etcd_;
  std::vector<std::shared_ptr<etcd_token_source>> followers_;
};

TEST_F(EtcdTokensTest, AnAddedTokenIsListedByItsHashNeverItself) {
  auto s = store();
  token_request req = named("ci", {"Blog", "api", "blog"});
  req.max_tunnels = 3;
  auto [token, rec] = add(s, req);
  EXPECT_TRUE(token.starts_with("ph_"));
  const auto all = listed(s);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, rec.id);
  EXPECT_EQ(all[0].name, "ci");
  EXPECT_EQ(all[0].prefix, token.substr(0, 9));
  EXPECT_EQ(all[0].hash, server::hash_token(token));
  EXPECT_EQ(all[0].subdomains, (std::vector<std::string>{"api", "blog"}));
  EXPECT_EQ(all[0].max_tunnels, 3u);
  EXPECT_FALSE(all[0].max_conns);
  EXPECT_FALSE(all[0].last_used);
  auto raw = run(client()->range_prefix("/"));
  ASSERT_TRUE(raw);
  for (const key_value& kv : raw.value.kvs) {
    EXPECT_EQ(kv.value.find(token.substr(3)), std::string::npos) << kv.key;
  }
}

TEST_F(EtcdTokensTest, ASubdomainAnotherTokenReservedIsRefusedNamingThatToken) {
  auto s = store();
  auto [token, owner] = add(s, named("owner", {"blog"}));
  try {
    run(s.add(named("thief", {"api", "BLOG"})));
    FAIL() << "a reserved subdomain was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "the subdomain 'blog' is already reserved by token " +
                                         std::to_string(owner.id) + " 'owner'");
  }
  EXPECT_EQ(listed(s).size(), 1u);
  EXPECT_THROW(run(s.add(named("1bad"))), std::invalid_argument);
}

TEST_F(EtcdTokensTest, OfTwoAddsRacingForOneSubdomainExactlyOneWins) {
  // Each add on a client of its own, both in flight at once: the two
  // transactions reach etcd together, one of them first.
  for (int round = 0; round < 5; ++round) {
    const std::string sub = "race" + std::to_string(round);
    etcd_tokens a = store();
    etcd_tokens b = store();
    auto first = asio::co_spawn(io_, a.add(named("a", {sub})), asio::use_future);
    auto second = asio::co_spawn(io_, b.add(named("b", {sub})), asio::use_future);
    run_until([&] {
      return first.wait_for(0s) == std::future_status::ready &&
             second.wait_for(0s) == std::future_status::ready;
    });
    int won = 0;
    int refused = 0;
    for (auto* f : {&first, &second}) {
      try {
        auto r = f->get();
        ASSERT_TRUE(r) << r.error->message;
        ++won;
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("already reserved"), std::string::npos) << e.what();
        ++refused;
      }
    }
    EXPECT_EQ(won, 1) << sub;
    EXPECT_EQ(refused, 1) << sub;
  }
  auto s = store();
  EXPECT_EQ(listed(s).size(), 5u);
}

TEST_F(EtcdTokensTest, TokensAddedAtOnceGetDistinctIds) {
  std::vector<etcd_tokens> stores;
  std::vector<std::future<etcd_result<std::pair<std::string, token_record>>>> adds;
  for (int i = 0; i < 6; ++i) {
    stores.push_back(store());
  }
  for (auto& s : stores) {
    adds.push_back(asio::co_spawn(io_, s.add(named("n")), asio::use_future));
  }
  run_until([&] {
    return std::all_of(adds.begin(), adds.end(),
                       [](auto& f) { return f.wait_for(0s) == std::future_status::ready; });
  });
  std::set<std::int64_t> ids;
  for (auto& f : adds) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error->message;
    ids.insert(r.value.second.id);
  }
  EXPECT_EQ(ids, (std::set<std::int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST_F(EtcdTokensTest, IdsAreNeverReusedAfterARevoke) {
  auto s = store();
  add(s, named("one"));
  auto [token, two] = add(s, named("two"));
  auto revoked = run(s.revoke(two.id));
  ASSERT_TRUE(revoked);
  EXPECT_TRUE(revoked.value);
  auto [again, three] = add(s, named("three"));
  EXPECT_EQ(three.id, 3);
  auto twice = run(s.revoke(two.id));
  ASSERT_TRUE(twice);
  EXPECT_FALSE(twice.value);
}

TEST_F(EtcdTokensTest, ARevokeFreesTheTokensSubdomainsAndForgetsItsLastUse) {
  auto s = store();
  auto [token, rec] = add(s, named("first", {"blog"}));
  ASSERT_TRUE(run(s.touch(rec.id, 1700000000)).value);
  ASSERT_TRUE(run(s.revoke(rec.id)).value);
  auto left = run(client()->range_prefix("/porthole/tokens/"));
  ASSERT_TRUE(left);
  ASSERT_EQ(left.value.kvs.size(), 1u);
  EXPECT_EQ(left.value.kvs[0].key, "/porthole/tokens/last-id");
  add(s, named("second", {"blog"}));
  // A last use written after the revoke does not bring anything back.
  EXPECT_FALSE(run(s.touch(rec.id, 1700000001)).value);
}

TEST_F(EtcdTokensTest, OnceATokenWasAddedOneIsRequiredEvenAfterEveryRevoke) {
  auto s = store();
  auto before = run(s.list());
  ASSERT_TRUE(before);
  EXPECT_FALSE(before.value.snapshot.ever_had_tokens);
  auto [token, rec] = add(s, named("only"));
  ASSERT_TRUE(run(s.revoke(rec.id)).value);
  auto after = run(s.list());
  ASSERT_TRUE(after);
  EXPECT_TRUE(after.value.snapshot.tokens.empty());
  EXPECT_TRUE(after.value.snapshot.ever_had_tokens);
}

TEST_F(EtcdTokensTest, ClustersWithOtherPrefixesHaveTheirOwnTokens) {
  auto s = store();
  etcd_tokens other(client(), "/other");
  add(s, named("here"));
  EXPECT_TRUE(listed(other).empty());
  EXPECT_FALSE(run(other.list()).value.snapshot.ever_had_tokens);
}

TEST_F(EtcdTokensTest, ANodeAcceptsATokenAddedElsewhereAndRefusesItOnceRevoked) {
  auto source = follower();
  int woken = 0;
  server::authtokens node({}, source, {5, 2, 100});
  node.on_changed([&] { ++woken; });
  node.refresh();
  EXPECT_FALSE(node.required());

  auto s = store();
  auto [token, rec] = add(s, named("ci", {"blog"}));
  run_until([&] { return node.refresh(); });
  EXPECT_GT(woken, 0);  // the watch woke the node: no need to wait for its next poll
  ASSERT_TRUE(node.check(token));
  const auto who = *node.check(token);
  EXPECT_EQ(who.db_id, rec.id);
  EXPECT_EQ(node.reserved_by("blog"), who.key);
  EXPECT_TRUE(node.required());

  ASSERT_TRUE(run(s.revoke(rec.id)).value);
  run_until([&] { return node.refresh(); });
  EXPECT_FALSE(node.check(token));
  EXPECT_FALSE(node.live(who));
  EXPECT_EQ(node.reserved_by("blog"), "");
  EXPECT_TRUE(node.required());
}

TEST_F(EtcdTokensTest, ANodeWritesALastUseAtMostOncePerPeriod) {
  auto source = follower();
  auto s = store();
  auto [token, rec] = add(s, named("busy"));
  const std::int64_t t = 1700000000;
  EXPECT_TRUE(source->touch(rec.id, t));
  const std::string key = "/porthole/tokens/used/" + std::to_string(rec.id);
  auto used = [&]() -> std::optional<key_value> {
    auto r = run(client()->range(key));
    return r && !r.value.kvs.empty() ? std::optional(r.value.kvs[0]) : std::nullopt;
  };
  run_until([&] { return used().has_value(); });
  EXPECT_TRUE(source->touch(rec.id, t + 10));  // within the period: not written
  EXPECT_TRUE(source->touch(rec.id, t + 60));
  run_until([&] { return used()->value == std::to_string(t + 60); });
  EXPECT_EQ(used()->version, 2);
  EXPECT_EQ(listed(s).at(0).last_used, t + 60);
}

TEST_F(EtcdTokensTest, ANodeKeepsTheTokensItReadWhileEtcdIsGone) {
  porthole::testing::captured_log log;
  auto s = store();
  auto [token, rec] = add(s, named("kept"));
  auto source = follower();
  server::authtokens node({}, source, {5, 2, 100});
  node.refresh();
  ASSERT_TRUE(node.check(token));
  etcd_->kill();
  run_until(
      [&] { return log.text().find("cannot read the tokens from etcd") != std::string::npos; });
  EXPECT_FALSE(node.refresh());
  EXPECT_TRUE(node.check(token));
}

// The token commands' store, as `portholed token ... --cluster etcds://...`
// builds it from the cluster's flags: TLS to etcd with the node's certificate.
TEST(EtcdTokenStoreTest, TheCommandsWorkOverTlsWithTheNodesCertificate) {
  if (!std::filesystem::exists(porthole::testing::etcd_program)) {
    FAIL() << "etcd is not installed at " << porthole::testing::etcd_program;
  }
  temporary_directory dir;
  const auto files = porthole::testing::etcd_tls_files::make(dir.path(), "cluster-ca");
  etcd_process etcd(dir.path(), files);
  server::cluster_config c;
  c.etcd = "etcds://127.0.0.1:" + etcd.port();
  c.ca = files.ca_cert;
  c.cert = files.client_cert;
  c.key = files.client_key;
  c.prefix = "/tls";
  etcd_token_store tokens(c);
  auto [token, rec] = tokens.add(named("over-tls"));
  ASSERT_EQ(tokens.list().size(), 1u);
  EXPECT_EQ(tokens.list()[0].hash, server::hash_token(token));
  EXPECT_EQ(tokens.where(), c.etcd + " (keys /tls/tokens/)");
  EXPECT_TRUE(tokens.revoke(rec.id));
  EXPECT_TRUE(tokens.list().empty());

  c.cert.clear();  // etcd asks for a client certificate
  c.key.clear();
  etcd_token_store refused(c);
  try {
    refused.list();
    FAIL() << "etcd answered a client without a certificate";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("etcd at " + c.etcd), std::string::npos) << e.what();
  }
}

TEST(EtcdTokenStoreTest, AnEtcdThatCannotBeReachedIsNamed) {
  server::cluster_config c;
  c.etcd = "etcd://127.0.0.1:" + std::to_string(porthole::testing::free_loopback_port());
  etcd_token_store tokens(c);
  try {
    tokens.add(named("nowhere"));
    FAIL() << "added to no etcd";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find("cannot reach etcd at " + c.etcd), 0u) << e.what();
  }
}

}  // namespace
}  // namespace porthole::cluster
