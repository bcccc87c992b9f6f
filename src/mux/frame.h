#pragma once
// Framing of porthole's multiplexed connection (the "mux" extension): many
// proxied connections as streams over one TLS connection. Pure: no sockets.
//
// A frame is a 12-byte header, little-endian like the ngrok framing, then the
// payload:  type (1) | flags (1) | reserved (2, zero) | stream id (4) |
// payload length (4). Flags are zero but on an OPEN frame of a connection
// that negotiated "stream_windows": there a non-zero value N says the new
// stream's window is 2^N bytes each way (12 <= N <= 20), not the default.

#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace porthole::mux {

enum class frame_type : std::uint8_t {
  data = 0,    ///< payload: bytes of the stream
  open = 1,    ///< server -> client: a new stream; payload: a StartProxy message (JSON)
  window = 2,  ///< payload: 4-byte increment of the sender's window for the stream
  fin = 3,     ///< the sender will send no more data on the stream
  reset = 4,   ///< the stream is aborted in both directions; payload: reason text, may be empty
};

inline constexpr std::size_t header_size = 12;
/// Bound on any payload: larger is a protocol error.
inline constexpr std::size_t max_payload = 64 * 1024;

/// The window exponents an OPEN frame may carry (4 KiB to 1 MiB).
inline constexpr std::uint8_t min_window_exponent = 12;
inline constexpr std::uint8_t max_window_exponent = 20;

struct frame_header {
  frame_type type = frame_type::data;
  std::uint32_t stream = 0;
  std::uint32_t length = 0;
  std::uint8_t flags = 0;

  bool operator==(const frame_header&) const = default;
};

/// Appends a header and its payload to `out`.
void append_frame(std::string& out, frame_type type, std::uint32_t stream,
                  std::string_view payload, std::uint8_t flags = 0);

/// Appends a WINDOW frame granting `increment` more bytes.
void append_window(std::string& out, std::uint32_t stream, std::uint32_t increment);

/// Reads a header; refuses an unknown type, flags other than an OPEN frame's
/// window exponent, non-zero reserved bytes,
/// and a length over max_payload (or a WINDOW payload that is not 4 bytes).
boost::system::result<frame_header> decode_header(std::string_view bytes);

/// The increment of a WINDOW payload (exactly 4 bytes).
std::uint32_t decode_window(std::string_view payload);

}  // namespace porthole::mux
