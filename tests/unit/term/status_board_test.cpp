#include "term/status_board.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace porthole::term {
namespace {

using namespace std::chrono_literals;

// A clock the test moves by hand.
struct manual_clock {
  steady_clock::time_point t = steady_clock::time_point{} + 10000s;
  std::function<steady_clock::time_point()> fn() {
    return [this] { return t; };
  }
};

inspect::exchange exchange_of(std::string method, std::string target, int status) {
  inspect::exchange e;
  e.request.method = std::move(method);
  e.request.target = std::move(target);
  if (status != 0) {
    e.response = inspect::captured_response{};
    e.response->status = status;
    e.response->reason = status == 200 ? "OK" : "Not Found";
  } else {
    e.error = "local service unreachable";
  }
  e.duration = 1500us;
  return e;
}

client::live_tunnel live(std::string name, std::string protocol, std::string url) {
  client::live_tunnel t;
  t.spec.name = std::move(name);
  t.spec.protocol = std::move(protocol);
  t.spec.local_port = "4000";
  t.url = std::move(url);
  return t;
}

TEST(StatusBoard, FollowsTheAgentFromConnectingToOnlineToReconnecting) {
  manual_clock clock;
  status_board board("0.1.0", clock.fn());
  EXPECT_EQ(board.snapshot().state, link_state::connecting);
  board.connecting();
  EXPECT_EQ(board.snapshot().state, link_state::connecting);
  board.online("1.7");
  auto s = board.snapshot();
  EXPECT_EQ(s.state, link_state::online);
  EXPECT_EQ(s.client_version, "0.1.0");
  EXPECT_EQ(s.server_version, "1.7");
  board.reconnecting(clock.t + 4s);
  s = board.snapshot();
  EXPECT_EQ(s.state, link_state::reconnecting);
  EXPECT_EQ(s.retry_at, clock.t + 4s);
  board.connecting();  // dialing again: still reconnecting, no countdown
  s = board.snapshot();
  EXPECT_EQ(s.state, link_state::reconnecting);
  EXPECT_EQ(s.retry_at, steady_clock::time_point{});
  board.set_offline("the server refused the client: invalid authtoken");
  s = board.snapshot();
  EXPECT_EQ(s.state, link_state::offline);
  EXPECT_EQ(s.offline_reason, "the server refused the client: invalid authtoken");
}

TEST(StatusBoard, ShowsTheTunnelsUpAndForgetsARefusalOnceTheTunnelIsUp) {
  status_board board("0.1.0");
  client::tunnel_spec web;
  web.name = "web";
  web.protocol = "http";
  board.tunnel_refused(web, "subdomain taken");
  ASSERT_EQ(board.snapshot().refused.size(), 1U);
  EXPECT_EQ(board.snapshot().refused[0].error, "subdomain taken");
  board.tunnels_changed({live("web", "http", "http://web.example.com")});
  const auto s = board.snapshot();
  EXPECT_TRUE(s.refused.empty());
  ASSERT_EQ(s.forwarding.size(), 1U);
  EXPECT_EQ(s.forwarding[0].url, "http://web.example.com");
  EXPECT_EQ(s.forwarding[0].local, "localhost:4000");
}

TEST(StatusBoard, CountsOpenAndTotalConnections) {
  status_board board("0.1.0");
  board.connection_opened();
  board.connection_opened();
  board.connection_closed();
  const auto s = board.snapshot();
  EXPECT_EQ(s.open_connections, 1U);
  EXPECT_EQ(s.total_connections, 2U);
}

TEST(StatusBoard, KeepsTheLastRequestsNewestFirst) {
  status_board board("0.1.0");
  for (std::size_t i = 0; i < status_board::kept_requests + 5; ++i) {
    board.exchange_done(exchange_of("GET", "/r" + std::to_string(i), 200));
  }
  board.exchange_done(exchange_of("POST", "/down", 0));
  const auto s = board.snapshot();
  ASSERT_EQ(s.requests.size(), status_board::kept_requests);
  EXPECT_EQ(s.requests[0].target, "/down");
  EXPECT_EQ(s.requests[0].status, 0);
  EXPECT_EQ(s.requests[0].error, "local service unreachable");
  EXPECT_EQ(s.requests[1].target, "/r" + std::to_string(status_board::kept_requests + 4));
  EXPECT_EQ(s.requests[1].reason, "OK");
  EXPECT_EQ(s.total_requests, status_board::kept_requests + 6);
}

TEST(StatusBoard, MarksARequestThatCameOverHttp2) {
  status_board board("0.1.0");
  inspect::exchange h2 = exchange_of("GET", "/over-h2", 200);
  h2.request.version = "HTTP/2";
  board.exchange_done(h2);
  board.exchange_done(exchange_of("GET", "/over-h1", 200));
  const auto s = board.snapshot();
  ASSERT_EQ(s.requests.size(), 2U);
  EXPECT_EQ(s.requests[0].protocol, "");
  EXPECT_EQ(s.requests[1].protocol, "h2");
}

TEST(StatusBoard, TheRateIsOverTheLastMinute) {
  manual_clock clock;
  status_board board("0.1.0", clock.fn());
  clock.t += 120s;
  for (int i = 0; i < 30; ++i) {
    board.exchange_done(exchange_of("GET", "/", 200));
  }
  EXPECT_DOUBLE_EQ(board.snapshot().requests_per_second, 0.5);  // 30 in the last 60 s
  clock.t += 30s;
  EXPECT_DOUBLE_EQ(board.snapshot().requests_per_second, 0.5);
  clock.t += 31s;  // they are more than a minute old now
  EXPECT_DOUBLE_EQ(board.snapshot().requests_per_second, 0.0);
  EXPECT_EQ(board.snapshot().total_requests, 30U);
}

TEST(StatusBoard, TheRateOfAYoungClientIsOverItsLife) {
  manual_clock clock;
  status_board board("0.1.0", clock.fn());
  clock.t += 10s;
  for (int i = 0; i < 5; ++i) {
    board.exchange_done(exchange_of("GET", "/", 200));
  }
  EXPECT_DOUBLE_EQ(board.snapshot().requests_per_second, 0.5);
}

TEST(StatusBoard, TellsOfAChangeOnceUntilTheNextSnapshot) {
  status_board board("0.1.0");
  int told = 0;
  board.on_change([&] { ++told; });
  board.snapshot();
  board.connection_opened();
  board.connection_closed();
  board.exchange_done(exchange_of("GET", "/", 200));
  EXPECT_EQ(told, 1);
  board.snapshot();
  board.note_problem("lost connection");
  EXPECT_EQ(told, 2);
  EXPECT_EQ(board.snapshot().last_problem->text, "lost connection");
}

TEST(StatusBoard, CallsTheFirstConnectionHookOnce) {
  status_board board("0.1.0");
  int called = 0;
  board.on_first_connection([&] { ++called; });
  board.connection_opened();
  board.connection_opened();
  EXPECT_EQ(called, 1);
}

}  // namespace
}  // namespace porthole::term
