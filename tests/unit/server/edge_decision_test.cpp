#include "server/edge_decision.h"

#include <gtest/gtest.h>

namespace porthole::server {
namespace {

using action = edge_decision::action;

tunnel make_tunnel(std::string host, std::string auth = {}) {
  tunnel t;
  t.url = "http://" + host;
  t.protocol = "http";
  t.host = std::move(host);
  t.http_auth = std::move(auth);
  return t;
}

connection_facts plain() {
  connection_facts c;
  c.scheme = "https";
  c.client_ip = "203.0.113.7";
  return c;
}

request_facts for_host(std::string_view host) {
  request_facts r;
  r.host = host;
  return r;
}

TEST(EdgeDecision, ForwardsToTheLocalTunnelWithTheForwardedFields) {
  const tunnel t = make_tunnel("app.example.com");
  const edge_decision d = decide(for_host("App.Example.com:8443"), {&t}, plain());
  ASSERT_EQ(d.what, action::forward);
  EXPECT_EQ(d.forwarded.client_ip, "203.0.113.7");
  EXPECT_EQ(d.forwarded.proto, "https");
  EXPECT_EQ(d.forwarded.host, "App.Example.com:8443");  // as the client sent it
}

TEST(EdgeDecision, RefusesARequestWithoutHost) {
  const tunnel t = make_tunnel("app.example.com");
  EXPECT_EQ(decide({}, {&t}, plain()).what, action::refuse);
  EXPECT_EQ(decide(for_host(""), {&t}, plain()).what, action::refuse);
}

TEST(EdgeDecision, AnUnknownNameIs404AndClosesTheConnection) {
  const edge_decision d = decide(for_host("nope.example.com"), {}, plain());
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 404u);
  EXPECT_EQ(d.answer.message, "Tunnel nope.example.com not found");
  EXPECT_EQ(d.answer.then, after_answer::close);
  EXPECT_EQ(d.answer.counted, error_kind::tunnel_not_found);
}

TEST(EdgeDecision, AHeldNameIs503WithRetryAfter) {
  route_facts held;
  held.held = true;
  const edge_decision d = decide(for_host("app.example.com"), held, plain());
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 503u);
  EXPECT_EQ(d.answer.extra_fields, "Retry-After: 5\r\n");
  EXPECT_FALSE(d.answer.counted);
}

TEST(EdgeDecision, BasicAuthIsAskedOfEveryRequestWithoutTheRightPassword) {
  const tunnel t = make_tunnel("app.example.com", "user:secret");
  request_facts r = for_host("app.example.com");
  edge_decision d = decide(r, {&t}, plain());
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 401u);
  EXPECT_EQ(d.answer.extra_fields, "WWW-Authenticate: Basic realm=\"porthole\"\r\n");
  EXPECT_EQ(d.answer.then, after_answer::keep_alive);
  EXPECT_EQ(d.answer.counted, error_kind::basic_auth_refused);

  r.authorization = "Basic dXNlcjp3cm9uZw==";  // user:wrong
  EXPECT_EQ(decide(r, {&t}, plain()).what, action::answer);
  r.authorization = "Basic dXNlcjpzZWNyZXQ=";  // user:secret
  EXPECT_EQ(decide(r, {&t}, plain()).what, action::forward);
}

TEST(EdgeDecision, AnAnswerToAClientThatClosesEndsTheConnectionAfterTheBody) {
  const tunnel t = make_tunnel("app.example.com", "user:secret");
  request_facts r = for_host("app.example.com");
  r.keep_alive = false;
  EXPECT_EQ(decide(r, {&t}, plain()).answer.then, after_answer::after_body);
}

TEST(EdgeDecision, AStreamServesOneTunnel) {
  const tunnel a = make_tunnel("a.example.com");
  const tunnel b = make_tunnel("b.example.com");
  connection_facts c = plain();
  c.serving = &a;
  EXPECT_EQ(decide(for_host("a.example.com"), {&a}, c).what, action::forward);
  const edge_decision d = decide(for_host("b.example.com"), {&b}, c);
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 421u);
  EXPECT_EQ(d.answer.message, "This connection serves a.example.com, not b.example.com.");
  EXPECT_EQ(d.answer.then, after_answer::keep_alive);
}

TEST(EdgeDecision, APinnedConnectionServesOnlyItsTunnel) {
  const tunnel a = make_tunnel("a.example.com");
  connection_facts c = plain();
  c.pinned = &a;
  EXPECT_EQ(decide(for_host("a.example.com"), {&a}, c).what, action::forward);
  edge_decision d = decide(for_host("b.example.com"), {}, c);
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 421u);
  EXPECT_EQ(d.answer.then, after_answer::after_body);
  c.pinned_usable = false;  // its multiplexed connection closed
  d = decide(for_host("a.example.com"), {&a}, c);
  EXPECT_EQ(d.answer.status, 421u);
}

TEST(EdgeDecision, ANameServedByAnotherNodeIsRelayedOnce) {
  route_facts remote;
  remote.remote = true;
  EXPECT_EQ(decide(for_host("a.example.com"), remote, plain()).what, action::relay);

  connection_facts relayed = plain();
  relayed.relayed = true;  // one hop at most
  edge_decision d = decide(for_host("a.example.com"), remote, relayed);
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 421u);

  connection_facts busy = plain();
  busy.answers_owed = true;  // the connection cannot change hands mid-stream
  EXPECT_EQ(decide(for_host("a.example.com"), remote, busy).answer.status, 421u);
}

TEST(EdgeDecision, ARelayThatFailedIs502WithRetryAfter) {
  route_facts remote;
  remote.remote = true;
  connection_facts c = plain();
  c.relay_failed = true;
  const edge_decision d = decide(for_host("a.example.com"), remote, c);
  ASSERT_EQ(d.what, action::answer);
  EXPECT_EQ(d.answer.status, 502u);
  EXPECT_EQ(d.answer.extra_fields, "Retry-After: 1\r\n");
  EXPECT_EQ(d.answer.counted, error_kind::relay_failed);
}

TEST(EdgeDecision, AStoppingNodeClosesUnansweredWhatItNoLongerServes) {
  connection_facts c = plain();
  c.stopping = true;
  route_facts remote;
  remote.remote = true;
  EXPECT_EQ(decide(for_host("a.example.com"), remote, c).what, action::close);
  EXPECT_EQ(decide(for_host("a.example.com"), {}, c).what, action::close);
  const tunnel t = make_tunnel("a.example.com");
  EXPECT_EQ(decide(for_host("a.example.com"), {&t}, c).what, action::forward);
  c.answers_owed = true;  // an earlier answer is owed: this one gets its page after it
  EXPECT_EQ(decide(for_host("a.example.com"), {}, c).answer.status, 404u);
}

TEST(RequestHost, IsTheRoutingNameOfHost) {
  EXPECT_EQ(request_host(for_host("Foo.Example.com:8080")), "foo.example.com");
  EXPECT_EQ(request_host({}), "");
}

}  // namespace
}  // namespace porthole::server
