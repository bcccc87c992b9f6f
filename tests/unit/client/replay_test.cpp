#include "client/replay.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace porthole::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

inspect::captured_request post() {
  return {"POST",
          "/hook?x=1",
          "HTTP/1.1",
          {{"Host", "app.example.com"}, {"Content-Length", "7"}, {"X-Raw", "\xff\xfe"}},
          {"payload", 7, false}};
}

std::string error_of(const inspect::captured_request& r, const replay_edit& edit) {
  try {
    replay_request(r, edit);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(ReplayRequest, WithoutEditsIsTheCapturedRequestByteForByte) {
  EXPECT_EQ(replay_request(post(), {}),
            "POST /hook?x=1 HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 7\r\n"
            "X-Raw: \xff\xfe\r\n\r\npayload");
}

TEST(ReplayRequest, AnExchangeThatCameOverHttp2IsSentAsTheTunnelCarriedIt) {
  inspect::captured_request r = post();
  r.version = "HTTP/2";  // the public client's; the tunnel carried HTTP/1.1
  EXPECT_THAT(replay_request(r, {}), ::testing::StartsWith("POST /hook?x=1 HTTP/1.1\r\n"));
}

TEST(ReplayRequest, ChunkedBodyIsSentAsCaptured) {
  inspect::captured_request r = post();
  r.headers = {{"Host", "a"}, {"Transfer-Encoding", "chunked"}};
  r.body = {"7\r\npayload\r\n0\r\n\r\n", 17, false};

  EXPECT_EQ(replay_request(r, {}),
            "POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            "7\r\npayload\r\n0\r\n\r\n");
}

TEST(ReplayRequest, EditedMethodTargetAndHeadersReplaceTheOriginals) {
  replay_edit edit;
  edit.method = "PUT";
  edit.target = "/v2";
  edit.headers = inspect::header_list{{"Host", "b"}, {"X-New", "1"}};

  const std::string sent = replay_request(post(), edit);

  EXPECT_THAT(sent, ::testing::StartsWith("PUT /v2 HTTP/1.1\r\nHost: b\r\nX-New: 1\r\n"));
  // The body stays, with a length for it since the new headers give none.
  EXPECT_THAT(sent, HasSubstr("Content-Length: 7\r\n\r\npayload"));
  EXPECT_THAT(sent, Not(HasSubstr("X-Raw")));
}

TEST(ReplayRequest, NewBodyGetsItsOwnLengthAndDropsChunking) {
  inspect::captured_request r = post();
  r.headers = {{"Host", "a"}, {"Transfer-Encoding", "chunked"}};
  r.body = {"7\r\npayload\r\n0\r\n\r\n", 17, false};
  replay_edit edit;
  edit.body = "new";

  EXPECT_EQ(replay_request(r, edit),
            "POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nnew");
}

TEST(ReplayRequest, NewBodyDropsTheOriginalContentCodingUnlessHeadersAreGiven) {
  inspect::captured_request r = post();
  r.headers = {{"Host", "a"}, {"Content-Encoding", "gzip"}, {"Content-Length", "20"}};
  replay_edit body_only;
  body_only.body = "plain";
  replay_edit both = body_only;
  both.headers = r.headers;

  EXPECT_THAT(replay_request(r, body_only), Not(HasSubstr("gzip")));
  EXPECT_THAT(replay_request(r, both), HasSubstr("Content-Encoding: gzip\r\nContent-Length: 5"));
}

TEST(ReplayRequest, BodyCutAtCaptureIsRefusedUnlessReplaced) {
  inspect::captured_request r = post();
  r.body = {"pay", 7, true};
  replay_edit edit;
  edit.body = "whole";

  EXPECT_THAT(error_of(r, {}), HasSubstr("cut at capture (3 of 7 bytes kept)"));
  EXPECT_EQ(error_of(r, edit), "");
}

TEST(ReplayRequest, EditsThatWouldBreakTheRequestAreRefused) {
  replay_edit bad_method;
  bad_method.method = "GET /x";
  replay_edit bad_target;
  bad_target.target = "/a b";
  replay_edit header_injection;
  header_injection.headers = inspect::header_list{{"X", "1\r\nEvil: 2"}};
  replay_edit bad_name;
  bad_name.headers = inspect::header_list{{"Bad Name", "1"}};

  EXPECT_THAT(error_of(post(), bad_method), HasSubstr("is not an HTTP method"));
  EXPECT_THAT(error_of(post(), bad_target), HasSubstr("is not a request target"));
  EXPECT_THAT(error_of(post(), header_injection), HasSubstr("line break"));
  EXPECT_THAT(error_of(post(), bad_name), HasSubstr("header name 'Bad Name' is not valid"));
}

TEST(ReplayRequest, WebSocketUpgradeIsRefused) {
  inspect::captured_request r = post();
  r.headers.emplace_back("Upgrade", "websocket");

  EXPECT_THAT(error_of(r, {}), HasSubstr("Upgrade: websocket"));
}

}  // namespace
}  // namespace porthole::client
