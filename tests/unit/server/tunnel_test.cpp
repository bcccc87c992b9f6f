#include "server/tunnel.h"

#include <gtest/gtest.h>

#include <set>

namespace porthole::server {
namespace {

TEST(MakeUrl, LeavesOutTheSchemesDefaultPort) {
  EXPECT_EQ(make_url("http", "foo.example.com", 80), "http://foo.example.com");
  EXPECT_EQ(make_url("https", "foo.example.com", 443), "https://foo.example.com");
}

TEST(MakeUrl, KeepsAnyOtherPort) {
  EXPECT_EQ(make_url("http", "foo.example.com", 8080), "http://foo.example.com:8080");
  EXPECT_EQ(make_url("https", "foo.example.com", 80), "https://foo.example.com:80");
}

TEST(RouteKey, IsSchemeAndHostWithoutPort) {
  EXPECT_EQ(route_key("https", "foo.localhost"), "https://foo.localhost");
}

TEST(Subdomain, AcceptsDnsLabels) {
  EXPECT_TRUE(valid_subdomain("foo"));
  EXPECT_TRUE(valid_subdomain("my-app2"));
  EXPECT_TRUE(valid_subdomain(std::string(63, 'x')));
}

TEST(Subdomain, IsOneLabelWithoutDots) {
  EXPECT_FALSE(valid_subdomain("a.b"));
}

TEST(Hostname, AcceptsDotSeparatedLabelsUpTo253Characters) {
  EXPECT_TRUE(valid_hostname("a.b.example.com"));
  std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                     std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(name.size(), 253u);
  EXPECT_TRUE(valid_hostname(name));
  EXPECT_FALSE(valid_hostname(name + "d"));
}

TEST(Hostname, RefusesEmptyLabelsAndBadCharacters) {
  EXPECT_FALSE(valid_hostname(""));
  EXPECT_FALSE(valid_hostname("a..b"));
  EXPECT_FALSE(valid_hostname(".a"));
  EXPECT_FALSE(valid_hostname("a."));
  EXPECT_FALSE(valid_hostname("a_b.example.com"));
  EXPECT_FALSE(valid_hostname("-a.example.com"));
}

TEST(Subdomain, RefusesWhatIsNotADnsName) {
  EXPECT_FALSE(valid_subdomain(""));
  EXPECT_FALSE(valid_subdomain("-foo"));
  EXPECT_FALSE(valid_subdomain("foo-"));
  EXPECT_FALSE(valid_subdomain("foo_bar"));
  EXPECT_FALSE(valid_subdomain("a..b"));
  EXPECT_FALSE(valid_subdomain("foo/bar"));
  EXPECT_FALSE(valid_subdomain("foo:80"));
  EXPECT_FALSE(valid_subdomain(std::string(64, 'x')));
}

TEST(RandomNames, AreHexOfTheRightLength) {
  const std::string sub = random_subdomain();
  const std::string id = random_client_id();
  EXPECT_EQ(sub.size(), 8u);
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_TRUE(valid_subdomain(sub));
}

TEST(RandomNames, DoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(random_client_id());
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(SniRouting, SendsTheServersOwnNameToTheTunnelProtocol) {
  EXPECT_TRUE(sni_is_tunnel_client("tunnel.example.com", "tunnel.example.com"));
}

TEST(SniRouting, SendsAConnectionWithoutSniToTheTunnelProtocol) {
  EXPECT_TRUE(sni_is_tunnel_client("", "tunnel.example.com"));
}

TEST(SniRouting, SendsAnyOtherNameToPublicHttps) {
  EXPECT_FALSE(sni_is_tunnel_client("foo.tunnel.example.com", "tunnel.example.com"));
  EXPECT_FALSE(sni_is_tunnel_client("example.org", "tunnel.example.com"));
}

}  // namespace
}  // namespace porthole::server
