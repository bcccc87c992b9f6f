#include "proto/frame.h"

#include <gtest/gtest.h>

#include "proto/error.h"

namespace porthole::proto {
namespace {

std::array<unsigned char, frame_header_size> header_of(std::int64_t v) {
  std::array<unsigned char, frame_header_size> h{};
  auto u = static_cast<std::uint64_t>(v);
  for (std::size_t i = 0; i < h.size(); ++i) {
    h[i] = static_cast<unsigned char>(u >> (8 * i));
  }
  return h;
}

TEST(Frame, EncodesLengthAsLittleEndianSixtyFourBits) {
  const std::string frame = encode_frame("{\"a\":1}");
  ASSERT_EQ(frame.size(), 8u + 7u);
  EXPECT_EQ(static_cast<unsigned char>(frame[0]), 7);
  for (int i = 1; i < 8; ++i) {
    EXPECT_EQ(frame[i], 0) << i;
  }
  EXPECT_EQ(frame.substr(8), "{\"a\":1}");
}

TEST(Frame, DecodesTheLengthItEncoded) {
  const std::string body(300, 'x');
  const std::string frame = encode_frame(body);
  std::array<unsigned char, frame_header_size> h;
  std::copy_n(frame.begin(), h.size(), h.begin());
  auto length = decode_frame_length(h, max_control_frame);
  ASSERT_TRUE(length);
  EXPECT_EQ(*length, 300u);
}

TEST(Frame, RefusesZeroLength) {
  EXPECT_EQ(decode_frame_length(header_of(0), max_control_frame).error(), error::bad_length);
}

TEST(Frame, RefusesNegativeLength) {
  EXPECT_EQ(decode_frame_length(header_of(-5), max_control_frame).error(), error::bad_length);
}

TEST(Frame, RefusesLengthOverTheBound) {
  EXPECT_EQ(decode_frame_length(header_of(max_control_frame + 1), max_control_frame).error(),
            error::frame_too_large);
  EXPECT_EQ(decode_frame_length(header_of(std::int64_t{1} << 40), max_control_frame).error(),
            error::frame_too_large);
}

TEST(Frame, AcceptsLengthAtTheBound) {
  auto length = decode_frame_length(header_of(max_control_frame), max_control_frame);
  ASSERT_TRUE(length);
  EXPECT_EQ(*length, max_control_frame);
}

TEST(Frame, ErrorsHaveReadableMessages) {
  const boost::system::error_code ec = error::frame_too_large;
  EXPECT_EQ(ec.category().name(), std::string("porthole.proto"));
  EXPECT_NE(ec.message().find("exceeds"), std::string::npos);
}

}  // namespace
}  // namespace porthole::proto
