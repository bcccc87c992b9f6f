// The bytes a peer sends on a control or proxy connection before and after
// Auth: a stream of ngrok 1.x frames (8-byte length, JSON body), and the same
// bytes read as a stream of mux frames (src/mux/frame.h).
//
// Properties: no crash; a decoded message encodes to a frame that decodes to
// the same message; a mux header that decodes re-encodes to the same bytes.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "check.h"
#include "mux/frame.h"
#include "proto/frame.h"
#include "proto/messages.h"

namespace {

namespace proto = porthole::proto;
namespace mux = porthole::mux;

void check_round_trip(const proto::message& m) {
  const std::string frame = proto::encode_framed(m);
  FUZZ_CHECK(frame.size() > proto::frame_header_size);
  std::array<unsigned char, proto::frame_header_size> header{};
  std::memcpy(header.data(), frame.data(), header.size());
  const auto length = proto::decode_frame_length(header, frame.size());
  FUZZ_CHECK(length && *length == frame.size() - proto::frame_header_size);
  const auto again = proto::decode(std::string_view(frame).substr(proto::frame_header_size));
  FUZZ_CHECK(again && *again == m);
}

void decode_message(std::string_view body) {
  const auto m = proto::decode(body);
  if (m) {
    FUZZ_CHECK(!proto::type_name(*m).empty());
    check_round_trip(*m);
  }
}

// As net::frame_reader reads a control connection: header, bounded body, message.
void read_ngrok_frames(std::string_view in) {
  while (in.size() >= proto::frame_header_size) {
    std::array<unsigned char, proto::frame_header_size> header{};
    std::memcpy(header.data(), in.data(), header.size());
    in.remove_prefix(header.size());
    const auto length = proto::decode_frame_length(header, proto::max_control_frame);
    if (!length) {
      return;
    }
    FUZZ_CHECK(*length > 0 && *length <= proto::max_control_frame);
    if (in.size() < *length) {
      return;
    }
    decode_message(in.substr(0, *length));
    in.remove_prefix(*length);
  }
}

// As mux::session reads a multiplexed connection.
void read_mux_frames(std::string_view in) {
  while (in.size() >= mux::header_size) {
    const auto h = mux::decode_header(in.substr(0, mux::header_size));
    if (!h) {
      return;
    }
    FUZZ_CHECK(h->length <= mux::max_payload);
    std::string encoded;
    mux::append_frame(encoded, h->type, h->stream, std::string(h->length, '\0'));
    FUZZ_CHECK(std::string_view(encoded).substr(0, mux::header_size) ==
               in.substr(0, mux::header_size));
    in.remove_prefix(mux::header_size);
    if (in.size() < h->length) {
      return;
    }
    const std::string_view payload = in.substr(0, h->length);
    if (h->type == mux::frame_type::window) {
      const std::uint32_t increment = mux::decode_window(payload);
      std::string window;
      mux::append_window(window, h->stream, increment);
      FUZZ_CHECK(window.substr(mux::header_size) == payload);
    } else if (h->type == mux::frame_type::open) {
      decode_message(payload);
    }
    in.remove_prefix(h->length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  read_ngrok_frames(in);
  read_mux_frames(in);
  // A body on its own, as a seed corpus of bare JSON messages gives it.
  if (size <= proto::max_control_frame) {
    decode_message(in);
  }
  return 0;
}
