#include "mux/frame.h"

#include <gtest/gtest.h>

#include "proto/error.h"

namespace porthole::mux {
namespace {

TEST(MuxFrame, HeaderIsTwelveLittleEndianBytes) {
  std::string out;
  append_frame(out, frame_type::fin, 0x01020304, "");
  ASSERT_EQ(out.size(), header_size);
  EXPECT_EQ(out, std::string("\x03\0\0\0\x04\x03\x02\x01\0\0\0\0", 12));
}

TEST(MuxFrame, DataRoundTrips) {
  std::string out;
  append_frame(out, frame_type::data, 7, "hello");
  auto h = decode_header(out);
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, (frame_header{frame_type::data, 7, 5}));
  EXPECT_EQ(out.substr(header_size), "hello");
}

TEST(MuxFrame, WindowCarriesItsIncrement) {
  std::string out;
  append_window(out, 9, 262144);
  auto h = decode_header(out);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->type, frame_type::window);
  EXPECT_EQ(decode_window(std::string_view(out).substr(header_size)), 262144u);
}

TEST(MuxFrame, SeveralFramesFollowEachOther) {
  std::string out;
  append_frame(out, frame_type::open, 1, "{}");
  append_frame(out, frame_type::data, 1, "abc");
  auto first = decode_header(out);
  ASSERT_TRUE(first);
  auto second = decode_header(std::string_view(out).substr(header_size + first->length));
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, (frame_header{frame_type::data, 1, 3}));
}

TEST(MuxFrame, RefusesAnUnknownType) {
  std::string out(header_size, '\0');
  out[0] = 9;
  EXPECT_EQ(decode_header(out).error(), proto::error::unknown_type);
}

TEST(MuxFrame, RefusesNonZeroFlagsButOnOpen) {
  std::string out;
  append_frame(out, frame_type::data, 1, "");
  out[1] = 1;
  EXPECT_EQ(decode_header(out).error(), proto::error::bad_payload);
  out[1] = 17;  // a window exponent, on a DATA frame
  EXPECT_EQ(decode_header(out).error(), proto::error::bad_payload);
}

TEST(MuxFrame, AnOpenFrameMayCarryAStreamWindowExponent) {
  std::string out;
  append_frame(out, frame_type::open, 3, "{}", 17);
  auto h = decode_header(out);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->flags, 17);
  EXPECT_EQ(h->type, frame_type::open);
  for (const std::uint8_t bad : {1, 11, 21, 255}) {
    out[1] = static_cast<char>(bad);
    EXPECT_EQ(decode_header(out).error(), proto::error::bad_payload) << int(bad);
  }
}

TEST(MuxFrame, RefusesAPayloadOverTheBound) {
  std::string out;
  append_frame(out, frame_type::data, 1, "");
  out[10] = 2;  // length 0x20000
  EXPECT_EQ(decode_header(out).error(), proto::error::frame_too_large);
}

TEST(MuxFrame, RefusesAWindowThatIsNotFourBytes) {
  std::string out;
  append_frame(out, frame_type::window, 1, "abc");
  EXPECT_EQ(decode_header(out).error(), proto::error::bad_payload);
}

TEST(MuxFrame, RefusesATruncatedHeader) {
  EXPECT_FALSE(decode_header(std::string(11, '\0')));
}

}  // namespace
}  // namespace porthole::mux
