// etcd_client against a real etcd (/usr/bin/etcd), one per test, on loopback.

#include "cluster/etcd_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/temporary_directory.h"
#include "unit/cluster/etcd_process.h"

namespace porthole::cluster {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using porthole::testing::etcd_process;
using porthole::testing::etcd_tls_files;
using porthole::testing::free_loopback_port;
using porthole::testing::temporary_directory;
using ::testing::HasSubstr;
using steady_clock = std::chrono::steady_clock;

// Only a guard against a hung test: every call ends on its own first.
constexpr auto guard_time = 20s;

template <class T>
bool ready(const std::future<T>& f) {
  return f.wait_for(0s) == std::future_status::ready;
}

// Runs `io` until `done()` (at most guard_time).
template <class Done>
void run_until(asio::io_context& io, Done done) {
  const auto give_up = steady_clock::now() + guard_time;
  while (!done()) {
    if (steady_clock::now() > give_up) {
      throw std::runtime_error("the test's coroutines did not finish within the guard time");
    }
    io.restart();
    io.run_for(5ms);
  }
}

// Runs `task` on `io` to its end: its result.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  auto done = asio::co_spawn(io, std::move(task), asio::use_future);
  run_until(io, [&] { return ready(done); });
  return done.get();
}

// A claim as portholed makes one: the key if nobody holds it, else who does.
asio::awaitable<etcd_result<txn_result>> claim(etcd_client& client, std::string key,
                                               std::string me) {
  // Named, not braced in the co_await: GCC 12 miscompiles initializer lists
  // there ("array used as initializer").
  std::vector<compare> unclaimed{compare::create_revision(key, compare::equal, 0)};
  std::vector<op> take{op::put(key, me)};
  std::vector<op> read{op::range(key)};
  co_return co_await client.txn(std::move(unclaimed), std::move(take), std::move(read));
}

const std::string etcd_missing =
    std::string("etcd is not installed at ") + porthole::testing::etcd_program +
    ": these tests run a real etcd. Install it with scripts/install-deps (Debian packages "
    "etcd-server and etcd-client).";

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(porthole::testing::etcd_program)) {
      FAIL() << etcd_missing;
    }
    etcd_.emplace(dir_.path());
  }

  etcd_options options(std::chrono::milliseconds timeout = 2000ms) const {
    etcd_options o;
    o.endpoints = {{"127.0.0.1", etcd_->port()}};
    o.request_timeout = timeout;
    return o;
  }

  template <class T>
  T run(asio::awaitable<T> task) {
    return cluster::run(io_, std::move(task));
  }

  temporary_directory dir_;
  asio::io_context io_;
  std::optional<etcd_process> etcd_;
};

TEST_F(EtcdClientTest, PutThenRangeReadsTheValueAndItsRevisions) {
  etcd_client client(io_.get_executor(), options());
  const auto first = run(client.put("/t/a", "one"));
  ASSERT_TRUE(first) << first.error->message;
  const auto second = run(client.put("/t/a", "two"));
  ASSERT_TRUE(second) << second.error->message;
  EXPECT_GT(*second, *first);

  const auto got = run(client.range("/t/a"));
  ASSERT_TRUE(got) << got.error->message;
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0], (key_value{.key = "/t/a",
                                    .value = "two",
                                    .create_revision = *first,
                                    .mod_revision = *second,
                                    .version = 2}));
  EXPECT_EQ(got->revision, *second);
}

TEST_F(EtcdClientTest, RangeOfAMissingKeyIsEmptyNotAnError) {
  etcd_client client(io_.get_executor(), options());
  const auto got = run(client.range("/nobody"));
  ASSERT_TRUE(got) << got.error->message;
  EXPECT_TRUE(got->kvs.empty());
  EXPECT_GT(got->revision, 0);
}

TEST_F(EtcdClientTest, RangePrefixReadsOnlyTheKeysUnderThePrefixInKeyOrder) {
  etcd_client client(io_.get_executor(), options());
  for (const char* key : {"/t/b", "/t/a", "/u/c", "/t", "/t/c/d"}) {
    ASSERT_TRUE(run(client.put(key, std::string("v") + key)));
  }
  const auto got = run(client.range_prefix("/t/"));
  ASSERT_TRUE(got) << got.error->message;
  std::vector<std::string> keys;
  for (const key_value& kv : got->kvs) {
    keys.push_back(kv.key);
  }
  EXPECT_THAT(keys, ::testing::ElementsAre("/t/a", "/t/b", "/t/c/d"));
  EXPECT_EQ(got->kvs[0].value, "v/t/a");

  const auto erased = run(client.erase_prefix("/t/"));
  ASSERT_TRUE(erased) << erased.error->message;
  EXPECT_EQ(erased->deleted, 3);
  EXPECT_EQ(run(client.range_prefix(""))->kvs.size(), 2u);  // /t and /u/c
}

TEST_F(EtcdClientTest, EraseReportsWhetherTheKeyWasThere) {
  etcd_client client(io_.get_executor(), options());
  const auto put = run(client.put("k", "v"));
  ASSERT_TRUE(put);
  const auto erased = run(client.erase("k"));
  ASSERT_TRUE(erased) << erased.error->message;
  EXPECT_EQ(erased->deleted, 1);
  EXPECT_GT(erased->revision, *put);
  EXPECT_EQ(run(client.erase("k"))->deleted, 0);
  EXPECT_TRUE(run(client.range("k"))->kvs.empty());
}

TEST_F(EtcdClientTest, BinaryKeysAndValuesRoundTrip) {
  etcd_client client(io_.get_executor(), options());
  const std::string key("k\0\xff\n\"", 5);
  const std::string value("\0\x01\x80\xfe\xff{}", 7);
  ASSERT_TRUE(run(client.put(key, value)));
  const auto got = run(client.range(key));
  ASSERT_TRUE(got);
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].key, key);
  EXPECT_EQ(got->kvs[0].value, value);
}

TEST_F(EtcdClientTest, ClaimOnCreateRevisionZeroIsWonByExactlyOneOfTwoClaimers) {
  etcd_client node_a(io_.get_executor(), options());
  etcd_client node_b(io_.get_executor(), options());
  for (int round = 0; round < 5; ++round) {
    const std::string key = "/tunnels/name-" + std::to_string(round);
    auto [a, b] = run(claim(node_a, key, "a") && claim(node_b, key, "b"));
    ASSERT_TRUE(a) << a.error->message;
    ASSERT_TRUE(b) << b.error->message;
    ASSERT_NE(a->succeeded, b->succeeded) << "round " << round;
    const txn_result& loser = a->succeeded ? *b : *a;
    const std::string winner = a->succeeded ? "a" : "b";
    ASSERT_EQ(loser.ranges.size(), 1u);
    ASSERT_EQ(loser.ranges[0].size(), 1u);
    EXPECT_EQ(loser.ranges[0][0].value, winner);
    EXPECT_EQ(run(node_a.range(key))->kvs[0].value, winner);
  }
}

TEST_F(EtcdClientTest, TakeoverOnModRevisionSucceedsOnlyWhileNobodyChangedTheKey) {
  etcd_client client(io_.get_executor(), options());
  const auto put = run(client.put("/owner", "a"));
  ASSERT_TRUE(put);
  const auto takeover = run(client.txn({compare::mod_revision("/owner", compare::equal, *put)},
                                       {op::put("/owner", "b")}, {op::range("/owner")}));
  ASSERT_TRUE(takeover) << takeover.error->message;
  EXPECT_TRUE(takeover->succeeded);
  EXPECT_TRUE(takeover->ranges.empty());

  const auto stale = run(client.txn({compare::mod_revision("/owner", compare::equal, *put)},
                                    {op::put("/owner", "c")}, {op::range("/owner")}));
  ASSERT_TRUE(stale) << stale.error->message;
  EXPECT_FALSE(stale->succeeded);
  ASSERT_EQ(stale->ranges.size(), 1u);
  ASSERT_EQ(stale->ranges[0].size(), 1u);
  EXPECT_EQ(stale->ranges[0][0].value, "b");
  EXPECT_EQ(stale->ranges[0][0].mod_revision, takeover->revision);
}

TEST_F(EtcdClientTest, TxnComparesValueVersionAndLease) {
  etcd_client client(io_.get_executor(), options());
  ASSERT_TRUE(run(client.put("k", "v1")));
  ASSERT_TRUE(run(client.put("k", "v2")));
  const auto holds = run(client.txn(
      {compare::value("k", compare::equal, "v2"), compare::version("k", compare::greater, 1),
       compare::lease("k", compare::equal, 0)},
      {op::range("k"), op::erase("k"), op::range_prefix("k")}, {}));
  ASSERT_TRUE(holds) << holds.error->message;
  EXPECT_TRUE(holds->succeeded);
  ASSERT_EQ(holds->ranges.size(), 2u);
  EXPECT_EQ(holds->ranges[0].size(), 1u);
  EXPECT_TRUE(holds->ranges[1].empty());
  const auto fails = run(client.txn({compare::value("gone", compare::not_equal, "")}, {}, {}));
  ASSERT_TRUE(fails);
  EXPECT_FALSE(fails->succeeded);
}

TEST_F(EtcdClientTest, KeyBoundToALeaseGoesWhenTheLeaseIsRevoked) {
  etcd_client client(io_.get_executor(), options());
  const auto lease = run(client.lease_grant(30s));
  ASSERT_TRUE(lease) << lease.error->message;
  EXPECT_EQ(lease->ttl, 30s);
  ASSERT_TRUE(run(client.put("/leased", "x", lease->id)));
  EXPECT_EQ(run(client.range("/leased"))->kvs.at(0).lease, lease->id);

  const auto revoked = run(client.lease_revoke(lease->id));
  ASSERT_TRUE(revoked) << revoked.error->message;
  EXPECT_TRUE(run(client.range("/leased"))->kvs.empty());
  const auto keepalive = run(client.lease_keepalive(lease->id));
  ASSERT_TRUE(keepalive) << keepalive.error->message;
  EXPECT_EQ(*keepalive, 0s);
}

TEST_F(EtcdClientTest, KeyBoundToALeaseGoesWhenTheLeaseExpires) {
  etcd_client client(io_.get_executor(), options());
  const auto lease = run(client.lease_grant(1s));
  ASSERT_TRUE(lease) << lease.error->message;
  ASSERT_TRUE(run(client.put("/leased", "x", lease->id)));
  const auto give_up = steady_clock::now() + lease->ttl + 5s;
  while (!run(client.range("/leased"))->kvs.empty()) {
    ASSERT_LT(steady_clock::now(), give_up) << "the key outlived its lease";
    std::this_thread::sleep_for(100ms);
  }
  const auto keepalive = run(client.lease_keepalive(lease->id));
  ASSERT_TRUE(keepalive) << keepalive.error->message;
  EXPECT_EQ(*keepalive, 0s);
}

TEST_F(EtcdClientTest, KeepaliveKeepsTheLeaseAndItsKeys) {
  etcd_client client(io_.get_executor(), options());
  const auto lease = run(client.lease_grant(1s));
  ASSERT_TRUE(lease) << lease.error->message;
  ASSERT_TRUE(run(client.put("/leased", "x", lease->id)));
  const auto until = steady_clock::now() + lease->ttl * 2 + 500ms;
  while (steady_clock::now() < until) {
    const auto ttl = run(client.lease_keepalive(lease->id));
    ASSERT_TRUE(ttl) << ttl.error->message;
    EXPECT_EQ(*ttl, lease->ttl);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(run(client.range("/leased"))->kvs.size(), 1u);
}

TEST_F(EtcdClientTest, RevokingAGoneLeaseIsEtcdsNotFoundNotUnavailable) {
  etcd_client client(io_.get_executor(), options());
  const auto revoked = run(client.lease_revoke(12345));
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error->code, 5);
  EXPECT_FALSE(revoked.error->unavailable);
  EXPECT_THAT(revoked.error->message, HasSubstr("lease not found"));
}

TEST_F(EtcdClientTest, PutBoundToAnUnknownLeaseIsEtcdsError) {
  etcd_client client(io_.get_executor(), options());
  const auto put = run(client.put("k", "v", 777));
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error->message, "etcdserver: requested lease not found");
  EXPECT_FALSE(put.error->unavailable);
}

// Collects watch events until there are `count` of them.
asio::awaitable<etcd_result<std::vector<watch_event>>> collect(etcd_watch& watch,
                                                               std::size_t count) {
  std::vector<watch_event> events;
  while (events.size() < count) {
    auto batch = co_await watch.next();
    if (!batch) {
      co_return failed<std::vector<watch_event>>(*batch.error);
    }
    for (auto& e : batch->events) {
      events.push_back(std::move(e));
    }
  }
  co_return etcd_result<std::vector<watch_event>>{std::nullopt, std::move(events)};
}

TEST_F(EtcdClientTest, WatchSeesPutsAndDeletesInOrderWithTheirRevisions) {
  etcd_client client(io_.get_executor(), options());
  auto watch = run(client.watch("/t/", true));
  ASSERT_TRUE(watch) << watch.error->message;
  const auto a = run(client.put("/t/a", "1"));
  const auto other = run(client.put("/u/x", "not watched"));
  const auto b = run(client.put("/t/b", "2"));
  const auto gone = run(client.erase("/t/a"));
  ASSERT_TRUE(a && other && b && gone);

  const auto events = run(collect(*watch, 3));
  ASSERT_TRUE(events) << events.error->message;
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].type, watch_event::kind::put);
  EXPECT_EQ(
      (*events)[0].kv,
      (key_value{
          .key = "/t/a", .value = "1", .create_revision = *a, .mod_revision = *a, .version = 1}));
  EXPECT_EQ((*events)[1].type, watch_event::kind::put);
  EXPECT_EQ((*events)[1].kv.key, "/t/b");
  EXPECT_EQ((*events)[1].kv.mod_revision, *b);
  EXPECT_EQ((*events)[2].type, watch_event::kind::erase);
  EXPECT_EQ((*events)[2].kv, (key_value{.key = "/t/a", .mod_revision = gone->revision}));
}

TEST_F(EtcdClientTest, WatchFromAPastRevisionReplaysWhatHappenedSince) {
  etcd_client client(io_.get_executor(), options());
  const auto first = run(client.put("k", "1"));
  ASSERT_TRUE(first);
  ASSERT_TRUE(run(client.put("k", "2")));
  auto watch = run(client.watch("k", false, *first));
  ASSERT_TRUE(watch) << watch.error->message;
  const auto events = run(collect(*watch, 2));
  ASSERT_TRUE(events) << events.error->message;
  EXPECT_EQ((*events)[0].kv.value, "1");
  EXPECT_EQ((*events)[1].kv.value, "2");
}

asio::awaitable<std::optional<etcd_result<watch_batch>>> next_within(
    etcd_watch& watch, std::chrono::milliseconds wait) {
  asio::steady_timer timer(co_await asio::this_coro::executor, wait);
  auto raced = co_await (watch.next() || timer.async_wait(asio::use_awaitable));
  if (raced.index() == 1) {
    co_return std::nullopt;
  }
  co_return std::get<0>(std::move(raced));
}

TEST_F(EtcdClientTest, NextRacedAgainstATimerLosesNoBatch) {
  etcd_client client(io_.get_executor(), options());
  auto watch = run(client.watch("k", false));
  ASSERT_TRUE(watch) << watch.error->message;
  EXPECT_FALSE(run(next_within(*watch, 100ms)).has_value());
  ASSERT_TRUE(run(client.put("k", "after the timer")));
  const auto batch = run(next_within(*watch, 5000ms));
  ASSERT_TRUE(batch.has_value());
  ASSERT_TRUE(*batch) << batch->error->message;
  ASSERT_EQ((*batch)->events.size(), 1u);
  EXPECT_EQ((*batch)->events[0].kv.value, "after the timer");
}

TEST_F(EtcdClientTest, CancelEndsAPendingNext) {
  etcd_client client(io_.get_executor(), options());
  auto watch = run(client.watch("k", false));
  ASSERT_TRUE(watch) << watch.error->message;
  auto pending = asio::co_spawn(io_, watch->next(), asio::use_future);
  io_.restart();
  io_.run_for(50ms);
  watch->cancel();
  run_until(io_, [&] { return ready(pending); });
  const auto result = pending.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error->message, "the watch was canceled");
}

TEST_F(EtcdClientTest, WatchFailsWhenEtcdGoes) {
  etcd_client client(io_.get_executor(), options());
  auto watch = run(client.watch("k", false));
  ASSERT_TRUE(watch) << watch.error->message;
  etcd_->kill();
  const auto batch = run(watch->next());
  ASSERT_FALSE(batch);
  EXPECT_TRUE(batch.error->unavailable) << batch.error->message;
  EXPECT_FALSE(run(watch->next()));
}

TEST_F(EtcdClientTest, ManyConcurrentCallsShareAFewConnections) {
  etcd_options o = options();
  o.max_connections = 2;
  etcd_client client(io_.get_executor(), o);
  std::vector<std::future<etcd_result<std::int64_t>>> puts;
  for (int i = 0; i < 40; ++i) {
    puts.push_back(
        asio::co_spawn(io_, client.put("/c/" + std::to_string(i), "v"), asio::use_future));
  }
  run_until(io_, [&] {
    return std::all_of(puts.begin(), puts.end(), [](const auto& f) { return ready(f); });
  });
  for (auto& f : puts) {
    const auto r = f.get();
    EXPECT_TRUE(r) << r.error->message;
  }
  EXPECT_EQ(run(client.range_prefix("/c/"))->kvs.size(), 40u);
}

TEST_F(EtcdClientTest, FailsOverPastAnEndpointThatRefusesConnections) {
  etcd_options o = options();
  o.endpoints.insert(o.endpoints.begin(),
                     etcd_endpoint{"127.0.0.1", std::to_string(free_loopback_port())});
  etcd_client client(io_.get_executor(), o);
  const auto put = run(client.put("k", "v"));
  ASSERT_TRUE(put) << put.error->message;
  const auto got = run(client.range("k"));
  ASSERT_TRUE(got) << got.error->message;
  EXPECT_EQ(got->kvs.at(0).value, "v");
  auto watch = run(client.watch("k", false));
  EXPECT_TRUE(watch) << watch.error->message;
}

TEST_F(EtcdClientTest, AFrozenMemberCostsOneTimeoutThenCallsGoToTheNext) {
  // A listener that never accepts: connections open and requests go out,
  // but no answer ever comes, as from a frozen member.
  asio::ip::tcp::acceptor frozen(io_, {asio::ip::make_address("127.0.0.1"), 0});
  etcd_options o = options(300ms);
  o.endpoints.insert(o.endpoints.begin(),
                     etcd_endpoint{"127.0.0.1", std::to_string(frozen.local_endpoint().port())});

  // A read is sent again to the next member.
  etcd_client reader(io_.get_executor(), o);
  auto started = steady_clock::now();
  const auto got = run(reader.range("k"));
  ASSERT_TRUE(got) << got.error->message;
  EXPECT_GE(steady_clock::now() - started, 250ms);
  started = steady_clock::now();
  ASSERT_TRUE(run(reader.put("k", "v")));
  EXPECT_LT(steady_clock::now() - started, 250ms);

  // A change is not: it may have been applied. The next one goes to the next member.
  etcd_client writer(io_.get_executor(), o);
  const auto lost = run(writer.put("k", "w"));
  ASSERT_FALSE(lost);
  EXPECT_TRUE(lost.error->unavailable);
  EXPECT_THAT(lost.error->message, HasSubstr("whether it took effect is unknown"));
  const auto retried = run(writer.put("k", "w"));
  ASSERT_TRUE(retried) << retried.error->message;
}

TEST_F(EtcdClientTest, NoEndpointReachableIsUnavailableNamingEach) {
  etcd_options o;
  const std::string p1 = std::to_string(free_loopback_port());
  const std::string p2 = std::to_string(free_loopback_port());
  o.endpoints = {{"127.0.0.1", p1}, {"127.0.0.1", p2}};
  etcd_client client(io_.get_executor(), o);
  const auto put = run(client.put("k", "v"));
  ASSERT_FALSE(put);
  EXPECT_TRUE(put.error->unavailable);
  EXPECT_THAT(put.error->message, HasSubstr("127.0.0.1:" + p1 + ": Connection refused"));
  EXPECT_THAT(put.error->message, HasSubstr("127.0.0.1:" + p2 + ": Connection refused"));
}

TEST_F(EtcdClientTest, FrozenEtcdGivesUnavailableWithinTheRequestTimeout) {
  etcd_client client(io_.get_executor(), options(500ms));
  ASSERT_TRUE(run(client.put("k", "v")));  // leaves an idle connection to reuse
  etcd_->freeze();

  auto started = steady_clock::now();
  const auto got = run(client.range("k"));
  auto took = steady_clock::now() - started;
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error->unavailable);
  EXPECT_THAT(got.error->message, HasSubstr("no answer within 500 ms"));
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 1500ms);

  started = steady_clock::now();
  const auto put = run(client.put("k", "w"));
  took = steady_clock::now() - started;
  ASSERT_FALSE(put);
  EXPECT_TRUE(put.error->unavailable);
  EXPECT_THAT(put.error->message, HasSubstr("whether it took effect is unknown"));
  EXPECT_LT(took, 1500ms);

  started = steady_clock::now();
  const auto watch = run(client.watch("k", false));
  took = steady_clock::now() - started;
  ASSERT_FALSE(watch);
  EXPECT_TRUE(watch.error->unavailable);
  EXPECT_LT(took, 1500ms);
}

TEST_F(EtcdClientTest, DestroyingTheClientEndsItsCallsInFlight) {
  auto client = std::make_unique<etcd_client>(io_.get_executor(), options(10000ms));
  ASSERT_TRUE(run(client->put("k", "v")));
  etcd_->freeze();
  auto pending = asio::co_spawn(io_, client->range("k"), asio::use_future);
  io_.restart();
  io_.run_for(100ms);
  const auto started = steady_clock::now();
  client.reset();
  run_until(io_, [&] { return ready(pending); });
  EXPECT_LT(steady_clock::now() - started, 1s);
  const auto got = pending.get();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error->message, "the etcd client was closed");
}

// A server that answers every request with `answer`, on a port of its own,
// counting the connections it accepted. Destroy it before running `io` again.
class fake_etcd {
 public:
  enum class after_answer { keep_open, close };

  fake_etcd(asio::io_context& io, std::string answer, after_answer then = after_answer::keep_open)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}),
        answer_(std::move(answer)),
        then_(then) {
    asio::co_spawn(io, accept(), [](std::exception_ptr e) {
      if (e) {
        std::rethrow_exception(e);
      }
    });
  }
  std::string port() const { return std::to_string(acceptor_.local_endpoint().port()); }
  int connections() const { return connections_; }

 private:
  static constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

  asio::awaitable<void> accept() {
    while (true) {
      auto [accept_error, socket] = co_await acceptor_.async_accept(use_tuple);
      if (accept_error) {
        co_return;
      }
      ++connections_;
      co_await serve(std::move(socket));
    }
  }

  // One connection, one request after another.
  asio::awaitable<void> serve(asio::ip::tcp::socket socket) {
    std::string in;
    while (true) {
      auto [head_error, head_size] =
          co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n\r\n", use_tuple);
      if (head_error) {
        co_return;
      }
      const std::string head = in.substr(0, head_size);
      const std::size_t length_at = head.find("Content-Length: ");
      const std::size_t length =
          length_at == std::string::npos ? 0 : std::stoul(head.substr(length_at + 16));
      in.erase(0, head_size);
      if (in.size() < length) {
        auto [body_error, n] =
            co_await asio::async_read(socket, asio::dynamic_buffer(in),
                                      asio::transfer_exactly(length - in.size()), use_tuple);
        if (body_error) {
          co_return;
        }
      }
      in.erase(0, length);
      auto [write_error, written] =
          co_await asio::async_write(socket, asio::buffer(answer_), use_tuple);
      if (write_error || then_ == after_answer::close) {
        co_return;
      }
    }
  }

  asio::ip::tcp::acceptor acceptor_;
  std::string answer_;
  after_answer then_;
  int connections_ = 0;
};

const std::string empty_range =
    "HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"header\":{\"revision\":\"1\"}}";

TEST(EtcdClientConnections, CallsOneAfterAnotherReuseOneConnection) {
  asio::io_context io;
  fake_etcd fake(io, empty_range);
  etcd_options o;
  o.endpoints = {{"127.0.0.1", fake.port()}};
  etcd_client client(io.get_executor(), o);
  for (int i = 0; i < 3; ++i) {
    const auto got = run(io, client.range("k"));
    ASSERT_TRUE(got) << got.error->message;
  }
  EXPECT_EQ(fake.connections(), 1);
}

TEST(EtcdClientConnections, AnIdleConnectionTheMemberClosedIsReplaced) {
  asio::io_context io;
  fake_etcd fake(io, empty_range, fake_etcd::after_answer::close);
  etcd_options o;
  o.endpoints = {{"127.0.0.1", fake.port()}};
  etcd_client client(io.get_executor(), o);
  for (int i = 0; i < 3; ++i) {
    const auto got = run(io, client.range("k"));
    ASSERT_TRUE(got) << got.error->message;
  }
  EXPECT_EQ(fake.connections(), 3);
}

TEST(EtcdClientAnswers, ABadJsonAnswerIsAnErrorNotACrash) {
  asio::io_context io;
  fake_etcd fake(io, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"kvs\":[");
  etcd_options o;
  o.endpoints = {{"127.0.0.1", fake.port()}};
  etcd_client client(io.get_executor(), o);
  const auto got = run(io, client.range("k"));
  ASSERT_FALSE(got);
  EXPECT_FALSE(got.error->unavailable);
  EXPECT_THAT(got.error->message, HasSubstr("malformed answer from etcd: not JSON"));
}

TEST(EtcdClientAnswers, AnAnswerOverTheLimitIsAnError) {
  asio::io_context io;
  fake_etcd fake(io, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(max_etcd_answer + 1) +
                         "\r\n\r\n{");
  etcd_options o;
  o.endpoints = {{"127.0.0.1", fake.port()}};
  etcd_client client(io.get_executor(), o);
  const auto got = run(io, client.range("k"));
  ASSERT_FALSE(got);
  EXPECT_FALSE(got.error->unavailable);
  EXPECT_THAT(got.error->message, HasSubstr("an answer over 16 MiB"));
}

TEST(EtcdClientAnswers, AnHttpErrorFromSomethingElseNamesItsStatus) {
  asio::io_context io;
  fake_etcd fake(io, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nBad Gateway");
  etcd_options o;
  o.endpoints = {{"127.0.0.1", fake.port()}};
  etcd_client client(io.get_executor(), o);
  const auto got = run(io, client.put("k", "v"));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error->message, "HTTP 502 from what should be etcd: Bad Gateway");
}

// TLS ------------------------------------------------------------------------

class EtcdClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(porthole::testing::etcd_program)) {
      FAIL() << etcd_missing;
    }
    files_ = etcd_tls_files::make(dir_.path(), "test-ca");
    etcd_.emplace(dir_.path(), files_);
  }

  etcd_options options() const {
    etcd_options o = parse_cluster_url("etcds://127.0.0.1:" + etcd_->port());
    o.ca_file = files_.ca_cert;
    o.cert_file = files_.client_cert;
    o.key_file = files_.client_key;
    return o;
  }

  temporary_directory dir_;
  asio::io_context io_;
  etcd_tls_files files_;
  std::optional<etcd_process> etcd_;
};

TEST_F(EtcdClientTlsTest, TalksToEtcdOverEtcdsWithAClientCertificate) {
  etcd_client client(io_.get_executor(), options());
  const auto put = run(io_, client.put("k", "over tls"));
  ASSERT_TRUE(put) << put.error->message;
  const auto got = run(io_, client.range("k"));
  ASSERT_TRUE(got) << got.error->message;
  EXPECT_EQ(got->kvs.at(0).value, "over tls");
  auto watch = run(io_, client.watch("k", false));
  ASSERT_TRUE(watch) << watch.error->message;
  ASSERT_TRUE(run(io_, client.erase("k")));
  const auto batch = run(io_, watch->next());
  ASSERT_TRUE(batch) << batch.error->message;
  EXPECT_EQ(batch->events.at(0).type, watch_event::kind::erase);
}

TEST_F(EtcdClientTlsTest, RefusesAnEtcdWhoseCertificateItsCaDidNotSign) {
  const std::filesystem::path other = dir_.path() / "other";
  std::filesystem::create_directory(other);
  etcd_options o = options();
  o.ca_file = etcd_tls_files::make(other, "other-ca").ca_cert;
  etcd_client client(io_.get_executor(), o);
  const auto put = run(io_, client.put("k", "v"));
  ASSERT_FALSE(put);
  EXPECT_TRUE(put.error->unavailable);
  EXPECT_THAT(put.error->message, HasSubstr("certificate verify failed"));
}

TEST_F(EtcdClientTlsTest, WithoutAClientCertificateEtcdRefuses) {
  etcd_options o = options();
  o.cert_file.clear();
  o.key_file.clear();
  etcd_client client(io_.get_executor(), o);
  const auto put = run(io_, client.put("k", "v"));
  ASSERT_FALSE(put);
}

TEST(EtcdClientOptions, AMissingCertificateFileIsAStartUpErrorNamingIt) {
  asio::io_context io;
  etcd_options o = parse_cluster_url("etcds://127.0.0.1:1");
  o.cert_file = "/nonexistent/client.crt";
  o.key_file = "/nonexistent/client.key";
  try {
    etcd_client client(io.get_executor(), o);
    ADD_FAILURE() << "accepted a missing certificate";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/client.crt"));
  }
}

}  // namespace
}  // namespace porthole::cluster
