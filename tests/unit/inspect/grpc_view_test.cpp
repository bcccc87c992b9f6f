#include "inspect/grpc_view.h"

#include <gtest/gtest.h>

namespace porthole::inspect {
namespace {

std::string frame(std::string_view message, bool compressed = false) {
  std::string out(1, compressed ? '\1' : '\0');
  const auto n = static_cast<std::uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out += static_cast<char>((n >> shift) & 0xff);
  }
  out += message;
  return out;
}

captured_body whole(std::string bytes) {
  captured_body b;
  b.size = bytes.size();
  b.bytes = std::move(bytes);
  return b;
}

TEST(GrpcView, IsOnlyForGrpcContentTypes) {
  EXPECT_TRUE(is_grpc({{"content-type", "application/grpc"}}));
  EXPECT_TRUE(is_grpc({{"Content-Type", "application/grpc+proto"}}));
  EXPECT_FALSE(is_grpc({{"content-type", "application/grpc-web"}}));
  EXPECT_FALSE(is_grpc({{"content-type", "application/json"}}));
  EXPECT_FALSE(grpc_of({{"content-type", "text/plain"}}, whole("x")));
}

TEST(GrpcView, ListsLengthPrefixedMessagesOfAChunkedBodyAndTheStatusInItsTrailers) {
  const std::string payload = frame("hello") + frame("", true) + frame(std::string(300, 'x'));
  std::string chunked = "a\r\n" + payload.substr(0, 10) + "\r\n";
  chunked += [&] {
    const std::string rest = payload.substr(10);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", rest.size());
    return std::string(size) + "\r\n" + rest + "\r\n";
  }();
  chunked += "0\r\ngrpc-status: 9\r\ngrpc-message: not%20today\r\n\r\n";
  const header_list head = {{"content-type", "application/grpc"},
                            {"Transfer-Encoding", "chunked"}};
  const auto g = grpc_of(head, whole(chunked));
  ASSERT_TRUE(g);
  ASSERT_EQ(g->messages.size(), 3u);
  EXPECT_EQ(g->messages[0], (grpc_message{false, 5, true}));
  EXPECT_EQ(g->messages[1], (grpc_message{true, 0, true}));
  EXPECT_EQ(g->messages[2], (grpc_message{false, 300, true}));
  EXPECT_EQ(g->status, "9");
  EXPECT_EQ(g->message, "not%20today");
  EXPECT_EQ(chunked_trailers(head, whole(chunked)),
            (header_list{{"grpc-status", "9"}, {"grpc-message", "not%20today"}}));
}

TEST(GrpcView, TakesTheStatusOfATrailersOnlyResponseFromItsHead) {
  const auto g = grpc_of({{"content-type", "application/grpc"}, {"grpc-status", "5"}}, whole(""));
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->messages.empty());
  EXPECT_EQ(g->status, "5");
}

TEST(GrpcView, AMessageCutByTheCaptureIsMarkedNotWhole) {
  captured_body cut = whole(frame(std::string(100, 'y')).substr(0, 50));
  cut.size = 105;
  cut.truncated = true;
  const auto g = grpc_of({{"content-type", "application/grpc"}}, cut);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->messages.size(), 1u);
  EXPECT_EQ(g->messages[0], (grpc_message{false, 100, false}));
  EXPECT_FALSE(g->status);
}

}  // namespace
}  // namespace porthole::inspect
