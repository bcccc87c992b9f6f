#include "server/tunnel_registry.h"

#include <gtest/gtest.h>

namespace porthole::server {
namespace {

using namespace std::chrono_literals;

TEST(TunnelRegistry, GivesAFreeUrlToTheFirstClient) {
  in_memory_registry r;
  EXPECT_TRUE(r.claim("http://foo.example.com", "a"));
}

TEST(TunnelRegistry, RefusesAUrlLiveForAnotherClient) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://foo.example.com", "a"));
  EXPECT_FALSE(r.claim("http://foo.example.com", "b"));
}

TEST(TunnelRegistry, LetsTheOwnerClaimAgain) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://foo.example.com", "a"));
  EXPECT_TRUE(r.claim("http://foo.example.com", "a"));
}

TEST(TunnelRegistry, HoldsAReleasedUrlForItsClientDuringTheGracePeriod) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://foo.example.com", "a"));
  r.release("http://foo.example.com", "a", tunnel_registry::clock::now() + 60s);
  EXPECT_FALSE(r.claim("http://foo.example.com", "b"));
  EXPECT_TRUE(r.claim("http://foo.example.com", "a"));
}

TEST(TunnelRegistry, FreesAUrlReleasedWithoutGrace) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://foo.example.com", "a"));
  r.release("http://foo.example.com", "a", tunnel_registry::clock::now());
  EXPECT_TRUE(r.claim("http://foo.example.com", "b"));
}

TEST(TunnelRegistry, FreesAHeldUrlOnceTheGracePeriodEnds) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://foo.example.com", "a"));
  r.release("http://foo.example.com", "a", tunnel_registry::clock::now() + 1ms);
  const auto until = tunnel_registry::clock::now() + 5ms;
  while (tunnel_registry::clock::now() < until) {
  }
  EXPECT_TRUE(r.claim("http://foo.example.com", "b"));
}

TEST(TunnelRegistry, IgnoresAReleaseByAClientThatDoesNotOwnTheUrl) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://foo.example.com", "a"));
  r.release("http://foo.example.com", "b", tunnel_registry::clock::now());
  EXPECT_FALSE(r.claim("http://foo.example.com", "b"));
}

TEST(TunnelRegistry, TellsAHeldUrlFromALiveOrFreeOne) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://live.example.com", "a"));
  ASSERT_TRUE(r.claim("http://held.example.com", "a"));
  r.release("http://held.example.com", "a", tunnel_registry::clock::now() + 60s);
  EXPECT_TRUE(r.is_held("http://held.example.com"));
  EXPECT_FALSE(r.is_held("http://live.example.com"));
  EXPECT_FALSE(r.is_held("http://free.example.com"));
}

TEST(TunnelRegistry, ListsOnlyTheHeldUrlsOfAClient) {
  in_memory_registry r;
  ASSERT_TRUE(r.claim("http://live.example.com", "a"));
  ASSERT_TRUE(r.claim("http://held.example.com", "a"));
  ASSERT_TRUE(r.claim("http://other.example.com", "b"));
  r.release("http://held.example.com", "a", tunnel_registry::clock::now() + 60s);
  r.release("http://other.example.com", "b", tunnel_registry::clock::now() + 60s);
  EXPECT_EQ(r.held_by("a"), std::vector<std::string>{"http://held.example.com"});
}

}  // namespace
}  // namespace porthole::server
