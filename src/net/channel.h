#pragma once
// The tunnel side of one proxied connection: a pooled TLS proxy connection of
// the ngrok 1.x protocol, or a stream of a multiplexed connection. Relays and
// the public HTTP handler work on this interface and do not care which.

#include <boost/asio/buffer.hpp>
#include <memory>
#include <tuple>

#include "net/stream.h"

namespace porthole::net {

class channel {
 public:
  virtual ~channel() = default;

  /// Reads what is available (at least one byte), or fails: asio::error::eof
  /// once the peer has finished sending.
  virtual asio::awaitable<std::tuple<error_code, std::size_t>> read_some(
      asio::mutable_buffer b) = 0;

  /// Waits until read_some() would not block (data, EOF or an error), so an
  /// idle connection holds no read buffer.
  virtual asio::awaitable<void> wait_readable() = 0;

  /// Writes all of `b`, or fails.
  virtual asio::awaitable<error_code> write(asio::const_buffer b) = 0;

  /// True if shutdown_send() tells the peer "no more data" while data can
  /// still flow the other way; false for a TLS proxy connection.
  virtual bool can_half_close() const = 0;

  /// No more data from this side; the other direction keeps flowing.
  virtual void shutdown_send() = 0;

  /// Ends the channel in both directions at once.
  virtual void close() = 0;
};

/// A TLS proxy connection (ngrok 1.x) as a channel. TLS cannot half-close
/// here: shutdown_send() does nothing and the relay decides when to close.
class tls_channel final : public channel {
 public:
  explicit tls_channel(std::unique_ptr<tls_stream> s) : s_(std::move(s)) {}

  asio::awaitable<std::tuple<error_code, std::size_t>> read_some(asio::mutable_buffer b) override;
  asio::awaitable<void> wait_readable() override;
  asio::awaitable<error_code> write(asio::const_buffer b) override;
  bool can_half_close() const override { return false; }
  void shutdown_send() override {}
  void close() override { close_stream(*s_); }

 private:
  std::unique_ptr<tls_stream> s_;
};

/// A TCP socket someone else owns, as a channel: a relay's public side.
class socket_channel final : public channel {
 public:
  explicit socket_channel(tcp::socket& s) : s_(s) {}

  asio::awaitable<std::tuple<error_code, std::size_t>> read_some(asio::mutable_buffer b) override;
  asio::awaitable<void> wait_readable() override;
  asio::awaitable<error_code> write(asio::const_buffer b) override;
  bool can_half_close() const override { return true; }
  void shutdown_send() override;
  void close() override { close_stream(s_); }

 private:
  tcp::socket& s_;
};

}  // namespace porthole::net
