#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>
#include <string>

#include "cluster/etcd_client.h"

namespace porthole::cluster {
namespace {

using ::testing::ElementsAre;

TEST(ParseClusterUrl, ReadsOnePlainMember) {
  const etcd_options options = parse_cluster_url("etcd://10.0.0.1:2379");
  EXPECT_FALSE(options.tls);
  EXPECT_THAT(options.endpoints, ElementsAre(etcd_endpoint{"10.0.0.1", "2379"}));
}

TEST(ParseClusterUrl, ReadsSeveralMembersInOrder) {
  const etcd_options options = parse_cluster_url("etcd://a.example:1,b.example:2,c.example:3");
  EXPECT_THAT(options.endpoints,
              ElementsAre(etcd_endpoint{"a.example", "1"}, etcd_endpoint{"b.example", "2"},
                          etcd_endpoint{"c.example", "3"}));
}

TEST(ParseClusterUrl, EtcdsMeansTls) {
  const etcd_options options = parse_cluster_url("etcds://etcd.internal:2379");
  EXPECT_TRUE(options.tls);
  EXPECT_THAT(options.endpoints, ElementsAre(etcd_endpoint{"etcd.internal", "2379"}));
}

TEST(ParseClusterUrl, ReadsBracketedIpv6Members) {
  const etcd_options options = parse_cluster_url("etcd://[::1]:2379,[fd00::2]:2380");
  EXPECT_THAT(options.endpoints,
              ElementsAre(etcd_endpoint{"::1", "2379"}, etcd_endpoint{"fd00::2", "2380"}));
}

TEST(ParseClusterUrl, DefaultsToEtcdsClientPort) {
  const etcd_options options = parse_cluster_url("etcd://a,[::1],b:1");
  EXPECT_THAT(options.endpoints,
              ElementsAre(etcd_endpoint{"a", "2379"}, etcd_endpoint{"::1", "2379"},
                          etcd_endpoint{"b", "1"}));
}

TEST(ParseClusterUrl, AcceptsATrailingSlash) {
  EXPECT_THAT(parse_cluster_url("etcd://a:1/").endpoints, ElementsAre(etcd_endpoint{"a", "1"}));
}

TEST(ParseClusterUrl, KeepsTheDefaultTimeout) {
  EXPECT_EQ(parse_cluster_url("etcd://a:1").request_timeout, std::chrono::milliseconds(2000));
}

TEST(ParseClusterUrl, RefusesWhatItCannotUseNamingTheProblem) {
  const std::map<std::string, std::string> cases = {
      {"etcd://a:b", "\"etcd://a:b\": port \"b\" is not a number"},
      {"etcd://a:70000", "\"etcd://a:70000\": port 70000 is out of range (1 to 65535)"},
      {"etcd://a:0", "\"etcd://a:0\": port 0 is out of range (1 to 65535)"},
      {"http://a:1", "\"http://a:1\": the scheme must be etcd:// (plain) or etcds:// (TLS)"},
      {"a:1", "\"a:1\": the scheme must be etcd:// (plain) or etcds:// (TLS)"},
      {"etcd://", "\"etcd://\": no member (host:port)"},
      {"etcd://a:1,,b:2", "\"etcd://a:1,,b:2\": an empty member between commas"},
      {"etcd://a:1,", "\"etcd://a:1,\": an empty member between commas"},
      {"etcd://a:", "\"etcd://a:\": empty port in \"a:\""},
      {"etcd://:1", "\"etcd://:1\": no host in \":1\""},
      {"etcd://::1:2379", "\"etcd://::1:2379\": an IPv6 address must be in brackets: \"::1:2379\""},
      {"etcd://[::1:2379", "\"etcd://[::1:2379\": unterminated [IPv6 address] in \"[::1:2379\""},
      {"etcd://[nope]:1", "\"etcd://[nope]:1\": \"nope\" is not an IPv6 address"},
      {"etcd://[::1]x", "\"etcd://[::1]x\": unexpected \"x\" after ]"},
      {"etcd://a:1/v3",
       "\"etcd://a:1/v3\": only host:port members, separated by commas (no "
       "path, query or user)"},
      {"etcd://u@a:1",
       "\"etcd://u@a:1\": only host:port members, separated by commas (no "
       "path, query or user)"},
      {"etcd://a b:1", "\"etcd://a b:1\": \"a b\" is not a host name or address"},
  };
  for (const auto& [url, message] : cases) {
    try {
      parse_cluster_url(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), message) << url;
    }
  }
}

}  // namespace
}  // namespace porthole::cluster
