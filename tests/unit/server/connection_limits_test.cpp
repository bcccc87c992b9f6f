#include "server/connection_limits.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace porthole::server {
namespace {

using namespace std::chrono_literals;

TEST(LogThrottle, LogsTheFirstEventOfAWindowAndCountsTheRest) {
  log_throttle t(1s);
  const auto t0 = log_throttle::clock::now();
  EXPECT_EQ(t.admit(t0), 0u);
  EXPECT_EQ(t.admit(t0 + 10ms), std::nullopt);
  EXPECT_EQ(t.admit(t0 + 900ms), std::nullopt);
  EXPECT_EQ(t.admit(t0 + 1s), 2u);
  EXPECT_EQ(t.admit(t0 + 3s), 0u);
}

TEST(SecondsText, ShowsATimeoutAsLogLinesDo) {
  EXPECT_EQ(seconds_text(0s), "0s");
  EXPECT_EQ(seconds_text(30s), "30s");
}

TEST(IpConnectionCounts, RefusesAnAddressAtItsLimitAndNoOther) {
  ip_connection_counts counts(2);
  auto a1 = counts.acquire("10.0.0.1");
  auto a2 = counts.acquire("10.0.0.1");
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(counts.acquire("10.0.0.1"));
  EXPECT_TRUE(counts.acquire("10.0.0.2"));
  EXPECT_EQ(counts.open("10.0.0.1"), 2u);
}

TEST(IpConnectionCounts, GivesASlotBackWhenTheConnectionEnds) {
  ip_connection_counts counts(1);
  {
    auto a = counts.acquire("10.0.0.1");
    ASSERT_TRUE(a);
    ip_connection_counts::slot moved = std::move(a);
    EXPECT_FALSE(counts.acquire("10.0.0.1"));
  }
  EXPECT_EQ(counts.open("10.0.0.1"), 0u);
  EXPECT_EQ(counts.addresses(), 0u);
  EXPECT_TRUE(counts.acquire("10.0.0.1"));
}

TEST(IpConnectionCounts, CountsWithoutLimitWhenTheLimitIsZero) {
  ip_connection_counts counts(0);
  std::vector<ip_connection_counts::slot> slots;
  for (int i = 0; i < 1000; ++i) {
    slots.push_back(counts.acquire("10.0.0.1"));
    ASSERT_TRUE(slots.back());
  }
  EXPECT_EQ(counts.open("10.0.0.1"), 1000u);
}

TEST(HandshakeSlots, CutsOffTheOldestWhenFull) {
  boost::asio::io_context ioc;
  std::vector<net::tcp::socket> socks;
  for (int i = 0; i < 3; ++i) {
    socks.emplace_back(ioc);
    socks.back().open(net::tcp::v4());
  }
  handshake_slots table(2);
  auto first = table.enter(socks[0], "a");
  auto second = table.enter(socks[1], "b");
  EXPECT_FALSE(first.cut_off());
  auto third = table.enter(socks[2], "c");
  EXPECT_TRUE(first.cut_off());
  EXPECT_FALSE(second.cut_off());
  EXPECT_FALSE(third.cut_off());
  EXPECT_EQ(table.waiting(), 2u);
  first.leave();  // already out: nothing changes
  EXPECT_EQ(table.waiting(), 2u);
}

TEST(HandshakeSlots, ForgetsAConnectionPastItsFirstMessage) {
  boost::asio::io_context ioc;
  net::tcp::socket a(ioc);
  net::tcp::socket b(ioc);
  net::tcp::socket c(ioc);
  handshake_slots table(2);
  auto sa = table.enter(a, "a");
  {
    auto sb = table.enter(b, "b");
    EXPECT_EQ(table.waiting(), 2u);
  }
  EXPECT_EQ(table.waiting(), 1u);
  sa.leave();
  EXPECT_EQ(table.waiting(), 0u);
  auto sc = table.enter(c, "c");
  EXPECT_FALSE(sc.cut_off());
}

}  // namespace
}  // namespace porthole::server
