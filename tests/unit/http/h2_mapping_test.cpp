#include "http/h2_mapping.h"

#include <gtest/gtest.h>

#include "http/request_rules.h"

namespace porthole::http {
namespace {

h2_request get(std::string path = "/") {
  h2_request r;
  r.method = "GET";
  r.scheme = "https";
  r.authority = "app.example.com";
  r.path = std::move(path);
  return r;
}

TEST(H1RequestHead, IsTheRequestLineWithHostFromAuthority) {
  h2_request r = get("/a?b=c");
  r.fields = {{"accept", "*/*"}, {"user-agent", "curl/7.88.1"}};
  const std::string head = h1_request_head(r, h1_body::none);
  EXPECT_EQ(head,
            "GET /a?b=c HTTP/1.1\r\nHost: app.example.com\r\naccept: */*\r\n"
            "user-agent: curl/7.88.1\r\n\r\n");
  EXPECT_FALSE(check_request_head(head, 100));
}

TEST(H1RequestHead, TakesHostFromTheHostFieldWithoutAuthority) {
  h2_request r = get();
  r.authority.clear();
  r.fields = {{"host", "other.example.com"}};
  EXPECT_EQ(h1_request_head(r, h1_body::none),
            "GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
}

TEST(H1RequestHead, AuthorityWinsOverAHostField) {
  h2_request r = get();
  r.fields = {{"host", "other.example.com"}};
  EXPECT_EQ(h1_request_head(r, h1_body::none), "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n");
}

TEST(H1RequestHead, JoinsCookieCrumbs) {
  h2_request r = get();
  r.fields = {{"cookie", "a=1"}, {"accept", "x"}, {"cookie", "b=2"}};
  EXPECT_EQ(h1_request_head(r, h1_body::none),
            "GET / HTTP/1.1\r\nHost: app.example.com\r\naccept: x\r\ncookie: a=1; b=2\r\n\r\n");
}

TEST(H1RequestHead, ABodyOfUnknownLengthIsChunked) {
  h2_request r = get();
  r.method = "POST";
  EXPECT_EQ(body_framing(r, false), h1_body::chunked);
  EXPECT_EQ(body_framing(r, true), h1_body::none);
  const std::string head = h1_request_head(r, h1_body::chunked);
  EXPECT_EQ(head, "POST / HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_FALSE(check_request_head(head, 100));
}

TEST(H1RequestHead, ABodyOfKnownLengthKeepsContentLength) {
  h2_request r = get();
  r.method = "PUT";
  r.fields = {{"content-length", "5"}};
  EXPECT_EQ(body_framing(r, false), h1_body::content_length);
  EXPECT_EQ(h1_request_head(r, h1_body::content_length),
            "PUT / HTTP/1.1\r\nHost: app.example.com\r\ncontent-length: 5\r\n\r\n");
}

TEST(H1RequestHead, CarriesTeTrailersEndToEndForGrpc) {
  h2_request r = get("/pkg.Service/Method");
  r.method = "POST";
  r.fields = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  const std::string head = h1_request_head(r, h1_body::chunked);
  EXPECT_EQ(head,
            "POST /pkg.Service/Method HTTP/1.1\r\nHost: app.example.com\r\n"
            "content-type: application/grpc\r\nTE: trailers\r\nConnection: te\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  EXPECT_FALSE(check_request_head(head, 100));
}

TEST(H1RequestHead, DropsConnectionSpecificFields) {
  h2_request r = get();
  r.fields = {{"connection", "close"}, {"keep-alive", "1"}, {"transfer-encoding", "chunked"},
              {"upgrade", "websocket"}, {"proxy-connection", "x"}, {"te", "gzip"}};
  EXPECT_EQ(h1_request_head(r, h1_body::none), "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n");
}

TEST(Chunks, FrameBytesAndTrailers) {
  std::string out;
  append_chunk(out, "hello");
  append_chunk(out, "");  // nothing: an empty chunk would end the body
  append_chunk(out, std::string(26, 'x'));
  append_last_chunk(out, {{"grpc-status", "0"}, {"grpc-message", "ok"}});
  EXPECT_EQ(out, "5\r\nhello\r\n1a\r\n" + std::string(26, 'x') +
                     "\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
}

TEST(H2ResponseFields, AreLowerCaseWithoutConnectionSpecificOnes) {
  response_head h;
  h.status = 200;
  h.fields = {{"Content-Type", "text/plain"}, {"Connection", "keep-alive, X-Hop"},
              {"Keep-Alive", "timeout=5"},    {"Transfer-Encoding", "chunked"},
              {"X-Hop", "1"},                 {"Set-Cookie", "a=1"},
              {"Set-Cookie", "b=2"},          {"Trailer", "grpc-status"}};
  const std::vector<field> out = h2_response_fields(h);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].name, "content-type");
  EXPECT_EQ(out[1].name, "set-cookie");
  EXPECT_EQ(out[1].value, "a=1");
  EXPECT_EQ(out[2].value, "b=2");
  EXPECT_EQ(out[3].name, "trailer");
}

}  // namespace
}  // namespace porthole::http
