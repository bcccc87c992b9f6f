#pragma once
// Framing of the ngrok 1.x protocol: a signed 64-bit little-endian length,
// then that many bytes of JSON. Pure: no sockets.

#include <array>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace porthole::proto {

/// Size of the length prefix in bytes.
inline constexpr std::size_t frame_header_size = 8;

/// The bound on a control frame's body: larger frames are a protocol error.
inline constexpr std::size_t max_control_frame = 64 * 1024;

/// Reads the body length from a frame header; refuses lengths <= 0 or > max_body.
boost::system::result<std::size_t> decode_frame_length(
    const std::array<unsigned char, frame_header_size>& header, std::size_t max_body);

/// Returns the header and body of a frame as one buffer, so it goes out in one write.
std::string encode_frame(std::string_view body);

}  // namespace porthole::proto
