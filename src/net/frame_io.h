#pragma once
// Reading and writing protocol messages on a stream. A reader keeps the bytes
// it read past a frame: after StartProxy they are the first public bytes.

#include <array>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <string>
#include <tuple>

#include "net/stream.h"
#include "proto/error.h"
#include "proto/frame.h"
#include "proto/messages.h"

namespace porthole::net {

/// Reads frames from a stream into its own buffer.
class frame_reader {
 public:
  explicit frame_reader(std::size_t max_body = proto::max_control_frame) : max_body_(max_body) {}

  /// Reads one message. On error the stream is no longer usable.
  template <class Stream>
  asio::awaitable<std::tuple<error_code, proto::message>> read(Stream& stream) {
    // co_await is kept out of if conditions: GCC 12 miscompiles some of them.
    const error_code header_ec = co_await fill(stream, proto::frame_header_size);
    if (header_ec) {
      co_return std::tuple{header_ec, proto::message{}};
    }
    std::array<unsigned char, proto::frame_header_size> header;
    std::memcpy(header.data(), buffer_.data(), header.size());
    auto length = proto::decode_frame_length(header, max_body_);
    if (!length) {
      co_return std::tuple{length.error(), proto::message{}};
    }
    const error_code body_ec = co_await fill(stream, proto::frame_header_size + *length);
    if (body_ec) {
      co_return std::tuple{body_ec, proto::message{}};
    }
    auto msg = proto::decode(std::string_view(buffer_).substr(proto::frame_header_size, *length));
    buffer_.erase(0, proto::frame_header_size + *length);
    if (!msg) {
      co_return std::tuple{msg.error(), proto::message{}};
    }
    co_return std::tuple{error_code{}, std::move(*msg)};
  }

  /// Bytes read past the last frame; the caller takes them over.
  std::string take_buffered() { return std::exchange(buffer_, {}); }

 private:
  template <class Stream>
  asio::awaitable<error_code> fill(Stream& stream, std::size_t want) {
    while (buffer_.size() < want) {
      const std::size_t old = buffer_.size();
      buffer_.resize(std::max(want, old + 4096));
      auto [ec, n] = co_await stream.async_read_some(
          asio::buffer(buffer_.data() + old, buffer_.size() - old), use_nothrow);
      buffer_.resize(old + n);
      if (ec) {
        co_return ec;
      }
    }
    co_return error_code{};
  }

  std::size_t max_body_;
  std::string buffer_;
};

/// Writes one framed message (proto::encode_framed) as a single write, so it
/// travels in one TLS record. Callers frame the message first: a named string
/// rather than a temporary message keeps GCC 12 coroutine frames sound.
template <class Stream>
asio::awaitable<error_code> write_message(Stream& stream, std::string frame) {
  auto [ec, n] = co_await asio::async_write(stream, asio::buffer(frame), use_nothrow);
  co_return ec;
}

}  // namespace porthole::net
