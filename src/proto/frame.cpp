#include "proto/frame.h"

#include "proto/error.h"

namespace porthole::proto {

boost::system::result<std::size_t> decode_frame_length(
    const std::array<unsigned char, frame_header_size>& header, std::size_t max_body) {
  std::uint64_t raw = 0;
  for (std::size_t i = 0; i < frame_header_size; ++i) {
    raw |= std::uint64_t{header[i]} << (8 * i);
  }
  const auto length = static_cast<std::int64_t>(raw);
  if (length <= 0) {
    return error::bad_length;
  }
  if (static_cast<std::uint64_t>(length) > max_body) {
    return error::frame_too_large;
  }
  return static_cast<std::size_t>(length);
}

std::string encode_frame(std::string_view body) {
  std::string frame(frame_header_size + body.size(), '\0');
  std::uint64_t length = body.size();
  for (std::size_t i = 0; i < frame_header_size; ++i) {
    frame[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  }
  frame.replace(frame_header_size, body.size(), body);
  return frame;
}

}  // namespace porthole::proto
