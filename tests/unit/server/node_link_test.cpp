#include "server/node_link.h"

#include <gtest/gtest.h>

namespace porthole::server {
namespace {

TEST(NodeLink, ARelayRequestComesBackAsItWasSent) {
  const relay_request sent{"app.example.com", "https", 1234, "203.0.113.9", "n2"};
  const auto got = decode_relay_request(encode(sent));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, sent.name);
  EXPECT_EQ(got->scheme, sent.scheme);
  EXPECT_EQ(got->revision, sent.revision);
  EXPECT_EQ(got->client_ip, sent.client_ip);
  EXPECT_EQ(got->from_node, sent.from_node);
}

TEST(NodeLink, ARelayAnswerComesBackAsItWasSent) {
  const auto refused = decode_relay_answer(encode(relay_answer{"not served here", true}));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error, "not served here");
  EXPECT_TRUE(refused->stale);
  const auto accepted = decode_relay_answer(encode(relay_answer{"", false}));
  ASSERT_TRUE(accepted);
  EXPECT_TRUE(accepted->error.empty());
}

TEST(NodeLink, RefusesARelayRequestThatIsNotOne) {
  for (const char* bad : {"", "[]", "{}", "not json", R"({"name":"a","scheme":"http"})",
                          R"({"name":"","scheme":"http","revision":1})",
                          R"({"name":"a","scheme":"gopher","revision":1})",
                          R"({"name":"a","scheme":"http","revision":"1"})",
                          R"({"name":7,"scheme":"http","revision":1})"}) {
    EXPECT_FALSE(decode_relay_request(bad)) << bad;
  }
}

TEST(NodeLink, RefusesAnAnswerThatIsNotAnObject) {
  EXPECT_FALSE(decode_relay_answer("[1]"));
  EXPECT_FALSE(decode_relay_answer("{"));
  EXPECT_FALSE(decode_relay_answer(R"({"error":5})"));
}

}  // namespace
}  // namespace porthole::server
