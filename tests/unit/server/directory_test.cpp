#include "server/directory.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace porthole::server {
namespace {

using namespace std::chrono_literals;

constexpr auto foo = "foo.example.com";

// A directory on a clock the test moves by hand.
struct fixture {
  directory::clock::time_point now{std::chrono::hours(1)};
  local_directory d{[this] { return now; }};

  std::shared_ptr<tunnel> make(std::string_view name, std::string_view scheme,
                               std::string_view client) {
    auto t = std::make_shared<tunnel>();
    t->protocol = scheme;
    t->client_id = client;
    if (scheme == "tcp") {
      t->url = name;
    } else {
      t->host = name;
      t->url = std::string(scheme) + "://" + std::string(name);
    }
    return t;
  }
  // Claims and keeps the tunnel, so a test can release it later.
  claim_outcome claim(std::string_view name, std::string_view scheme, std::string_view client) {
    last = make(name, scheme, client);
    return d.claim_now(name, {std::string(client), ""}, {last}).outcome;
  }
  std::shared_ptr<tunnel> last;
};

TEST(Directory, GivesAFreeNameToTheFirstClientAndRoutesItThere) {
  fixture f;
  EXPECT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  EXPECT_EQ(f.d.find("http", foo).local, f.last);
  EXPECT_EQ(f.d.find("https", foo).local, nullptr);
  EXPECT_FALSE(f.d.find("https", foo).held);
}

TEST(Directory, RefusesANameLiveForAnotherClient) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  const auto a = f.last;
  EXPECT_EQ(f.claim(foo, "http", "b"), claim_outcome::live_elsewhere);
  EXPECT_EQ(f.d.find("http", foo).local, a);
}

TEST(Directory, RefusesTheOtherSchemeOfANameToAnotherClient) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "https", "a"), claim_outcome::won);
  EXPECT_EQ(f.claim(foo, "http", "b"), claim_outcome::live_elsewhere);
}

TEST(Directory, RefusesTheOtherSchemeOfAHeldNameToAnotherClient) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "https", "a"), claim_outcome::won);
  f.d.release(*f.last, f.now + 60s);
  EXPECT_EQ(f.claim(foo, "http", "b"), claim_outcome::held_elsewhere);
}

TEST(Directory, ClaimsEverySchemeOfANameAtOnce) {
  fixture f;
  auto http = f.make(foo, "http", "a");
  auto https = f.make(foo, "https", "a");
  const claim_answer got = f.d.claim_now(foo, {"a", ""}, {http, https});
  ASSERT_TRUE(got.won());
  EXPECT_EQ(f.d.find("http", foo).local, http);
  EXPECT_EQ(f.d.find("https", foo).local, https);
}

TEST(Directory, GivesItsOwnerEverySchemeAndANewerTunnelReplacesTheOlder) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "https", "a"), claim_outcome::won);
  const auto older = f.last;
  EXPECT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  EXPECT_EQ(f.claim(foo, "https", "a"), claim_outcome::won);
  EXPECT_EQ(f.d.find("https", foo).local, f.last);
  f.d.release(*older, f.now);  // the replaced tunnel's session ends later
  EXPECT_EQ(f.d.find("https", foo).local, f.last);
}

TEST(Directory, GivesEachWonClaimAHigherRevision) {
  fixture f;
  auto t = f.make(foo, "http", "a");
  const auto first = f.d.claim_now(foo, {"a", ""}, {t});
  const auto second =
      f.d.claim_now("bar.example.com", {"a", ""}, {f.make("bar.example.com", "http", "a")});
  const auto again = f.d.claim_now(foo, {"a", ""}, {t});
  EXPECT_LT(first.revision, second.revision);
  EXPECT_LT(second.revision, again.revision);
}

TEST(Directory, KeepsTheNameWhileOneOfItsSchemesIsLive) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  const auto http = f.last;
  ASSERT_EQ(f.claim(foo, "https", "a"), claim_outcome::won);
  f.d.release(*http, f.now);  // CloseTunnel of one scheme
  EXPECT_EQ(f.claim(foo, "http", "b"), claim_outcome::live_elsewhere);
  EXPECT_FALSE(f.d.find("http", foo).held);
  EXPECT_FALSE(f.d.is_free(foo));
}

TEST(Directory, HoldsAReleasedNameForItsClientDuringTheGracePeriod) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  f.d.release(*f.last, f.now + 60s);
  EXPECT_TRUE(f.d.find("http", foo).held);
  EXPECT_EQ(f.d.find("http", foo).local, nullptr);
  EXPECT_NE(f.claim(foo, "http", "b"), claim_outcome::won);
  EXPECT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  EXPECT_FALSE(f.d.find("http", foo).held);
}

TEST(Directory, FreesANameReleasedWithoutGrace) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  f.d.release(*f.last, f.now);
  EXPECT_TRUE(f.d.is_free(foo));
  EXPECT_EQ(f.claim(foo, "https", "b"), claim_outcome::won);
}

TEST(Directory, FreesAHeldNameOnceTheGracePeriodEnds) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  f.d.release(*f.last, f.now + 30s);
  f.now += 29s;
  EXPECT_FALSE(f.d.is_free(foo));
  f.now += 1s;
  EXPECT_TRUE(f.d.is_free(foo));
  EXPECT_FALSE(f.d.find("http", foo).held);
  EXPECT_TRUE(f.d.held_by("a").empty());
  EXPECT_EQ(f.claim(foo, "https", "b"), claim_outcome::won);
}

TEST(Directory, IgnoresAReleaseOfATunnelItDoesNotRoute) {
  fixture f;
  ASSERT_EQ(f.claim(foo, "http", "a"), claim_outcome::won);
  const auto stranger = f.make(foo, "http", "b");
  f.d.release(*stranger, f.now);
  EXPECT_NE(f.claim(foo, "http", "b"), claim_outcome::won);
}

TEST(Directory, ListsOnlyTheHeldNamesOfAClientWithTheirSchemes) {
  fixture f;
  ASSERT_EQ(f.claim("live.example.com", "http", "a"), claim_outcome::won);
  ASSERT_EQ(f.claim("held.example.com", "http", "a"), claim_outcome::won);
  const auto held_http = f.last;
  ASSERT_EQ(f.claim("held.example.com", "https", "a"), claim_outcome::won);
  const auto held_https = f.last;
  ASSERT_EQ(f.claim("other.example.com", "http", "b"), claim_outcome::won);
  f.d.release(*f.last, f.now + 60s);
  f.d.release(*held_http, f.now + 60s);
  f.d.release(*held_https, f.now + 60s);
  const auto held = f.d.held_by("a");
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].name, "held.example.com");
  EXPECT_EQ(held[0].schemes, (std::vector<std::string>{"http", "https"}));
}

TEST(Directory, RefusesAHeldTcpPortToAnotherClient) {
  fixture f;
  ASSERT_EQ(f.claim("tcp://example.com:20001", "tcp", "a"), claim_outcome::won);
  f.d.release(*f.last, f.now + 60s);
  EXPECT_EQ(f.claim("tcp://example.com:20001", "tcp", "b"), claim_outcome::held_elsewhere);
  EXPECT_EQ(f.claim("tcp://example.com:20001", "tcp", "a"), claim_outcome::won);
}

TEST(Directory, ListsTheTunnelsItRoutes) {
  fixture f;
  ASSERT_EQ(f.claim("a.example.com", "http", "a"), claim_outcome::won);
  ASSERT_EQ(f.claim("b.example.com", "https", "b"), claim_outcome::won);
  f.d.release(*f.last, f.now + 60s);
  const auto tunnels = f.d.local_tunnels();
  ASSERT_EQ(tunnels.size(), 1u);
  EXPECT_EQ(tunnels[0]->host, "a.example.com");
}

TEST(Directory, AnswersAClaimAsACoroutine) {
  fixture f;
  boost::asio::io_context ioc;
  claim_answer got;
  boost::asio::co_spawn(ioc, f.d.claim(foo, {"a", ""}, {f.make(foo, "http", "a")}),
                        [&](std::exception_ptr e, claim_answer a) {
                          ASSERT_FALSE(e);
                          got = a;
                        });
  ioc.run();
  EXPECT_TRUE(got.won());
}

}  // namespace
}  // namespace porthole::server
