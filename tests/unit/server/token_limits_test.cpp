#include "server/token_limits.h"

#include <gtest/gtest.h>

#include "server/control_session.h"

namespace porthole::server {
namespace {

token_identity token_with(token_limits l) {
  token_identity who;
  who.key = "db:1";
  who.label = "token 1";
  who.limits = l;
  return who;
}

TEST(TunnelLimitRefusal, AllowsUpToTheLimitAndRefusesBeyondNamingIt) {
  const token_identity who = token_with({3, 1, 0});
  EXPECT_EQ(tunnel_limit_refusal(who, {2, 0}, 1, false), "");
  const std::string why = tunnel_limit_refusal(who, {3, 0}, 1, false);
  EXPECT_NE(why.find("Too many tunnels"), std::string::npos) << why;
  EXPECT_NE(why.find("--max-tunnels-per-token"), std::string::npos) << why;
  // http+https asks for two at once.
  EXPECT_NE(tunnel_limit_refusal(who, {2, 0}, 2, false), "");
}

TEST(TunnelLimitRefusal, CountsTcpPortsOnlyForTcpTunnels) {
  const token_identity who = token_with({10, 1, 0});
  EXPECT_EQ(tunnel_limit_refusal(who, {1, 1}, 1, false), "");
  const std::string why = tunnel_limit_refusal(who, {1, 1}, 1, true);
  EXPECT_NE(why.find("Too many TCP ports"), std::string::npos) << why;
  EXPECT_NE(why.find("--max-tcp-ports-per-token"), std::string::npos) << why;
}

TEST(TunnelLimitRefusal, NamesTheTokensOwnLimit) {
  token_identity who = token_with({1, 1, 0});
  who.own_tunnels = true;
  const std::string why = tunnel_limit_refusal(who, {1, 0}, 1, false);
  EXPECT_NE(why.find("token add --max-tunnels"), std::string::npos) << why;
}

TEST(TunnelLimitRefusal, ZeroIsNoLimit) {
  EXPECT_EQ(tunnel_limit_refusal(token_with({0, 0, 0}), {100000, 100000}, 1, true), "");
}

TEST(TokenAccount, CountsPublicConnectionsOfAllItsClientsAndRefusesAtTheLimit) {
  token_account account(token_with({0, 0, 2}));
  auto client_a = std::make_shared<std::size_t>(0);
  auto client_b = std::make_shared<std::size_t>(0);
  std::optional<public_conn_slot> first, second;
  {
    auto counter = account.admit_conn();
    ASSERT_TRUE(counter);
    first.emplace(client_a, counter);
  }
  {
    auto counter = account.admit_conn();
    ASSERT_TRUE(counter);
    second.emplace(client_b, counter);
  }
  EXPECT_EQ(account.conns(), 2u);
  EXPECT_EQ(*client_a, 1u);
  EXPECT_FALSE(account.admit_conn());
  first.reset();
  EXPECT_EQ(account.conns(), 1u);
  EXPECT_EQ(*client_a, 0u);
  EXPECT_TRUE(account.admit_conn());
}

TEST(TokenAccount, UsageOfAnAccountWithoutLiveClientsIsZero) {
  token_account account(token_with({1, 1, 1}));
  account.sessions.push_back(std::weak_ptr<control_session>());
  const token_usage used = account.usage();
  EXPECT_EQ(used.tunnels, 0u);
  EXPECT_EQ(used.tcp_ports, 0u);
  EXPECT_TRUE(account.sessions.empty());
}

}  // namespace
}  // namespace porthole::server
