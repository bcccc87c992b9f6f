#include "mux/frame.h"

#include "proto/error.h"

namespace porthole::mux {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out += static_cast<char>((v >> (8 * i)) & 0xff);
  }
}

std::uint32_t get_u32(std::string_view b) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= std::uint32_t{static_cast<unsigned char>(b[i])} << (8 * i);
  }
  return v;
}

}  // namespace

void append_frame(std::string& out, frame_type type, std::uint32_t stream,
                  std::string_view payload, std::uint8_t flags) {
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  out.append(2, '\0');
  put_u32(out, stream);
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  out.append(payload);
}

void append_window(std::string& out, std::uint32_t stream, std::uint32_t increment) {
  std::string payload;
  put_u32(payload, increment);
  append_frame(out, frame_type::window, stream, payload);
}

boost::system::result<frame_header> decode_header(std::string_view b) {
  if (b.size() < header_size) {
    return proto::error::bad_length;
  }
  const auto type = static_cast<unsigned char>(b[0]);
  if (type > static_cast<unsigned char>(frame_type::reset)) {
    return proto::error::unknown_type;
  }
  const auto flags = static_cast<std::uint8_t>(b[1]);
  if (b[2] != 0 || b[3] != 0) {
    return proto::error::bad_payload;
  }
  if (flags != 0 && (type != static_cast<unsigned char>(frame_type::open) ||
                     flags < min_window_exponent || flags > max_window_exponent)) {
    return proto::error::bad_payload;
  }
  frame_header h{static_cast<frame_type>(type), get_u32(b.substr(4)), get_u32(b.substr(8)),
                 flags};
  if (h.length > max_payload) {
    return proto::error::frame_too_large;
  }
  if (h.type == frame_type::window && h.length != 4) {
    return proto::error::bad_payload;
  }
  return h;
}

std::uint32_t decode_window(std::string_view payload) {
  return get_u32(payload);
}

}  // namespace porthole::mux
