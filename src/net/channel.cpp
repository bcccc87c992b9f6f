#include "net/channel.h"

#include <boost/asio/write.hpp>

namespace porthole::net {

asio::awaitable<std::tuple<error_code, std::size_t>> tls_channel::read_some(
    asio::mutable_buffer b) {
  auto [ec, n] = co_await s_->async_read_some(b, use_nothrow);
  co_return std::tuple{ec, n};
}

// Asio's TLS stream keeps ciphertext it read ahead in its own buffer, where
// neither the socket nor SSL_pending() shows it: a wait could miss it, so a
// TLS proxy connection is always ready to be read.
asio::awaitable<void> tls_channel::wait_readable() {
  co_return;
}

asio::awaitable<error_code> tls_channel::write(asio::const_buffer b) {
  auto [ec, n] = co_await asio::async_write(*s_, b, use_nothrow);
  co_return ec;
}

asio::awaitable<std::tuple<error_code, std::size_t>> socket_channel::read_some(
    asio::mutable_buffer b) {
  auto [ec, n] = co_await s_.async_read_some(b, use_nothrow);
  co_return std::tuple{ec, n};
}

asio::awaitable<void> socket_channel::wait_readable() {
  auto [ec] = co_await s_.async_wait(tcp::socket::wait_read, use_nothrow);
  (void)ec;  // an error shows in the read that follows
}

asio::awaitable<error_code> socket_channel::write(asio::const_buffer b) {
  auto [ec, n] = co_await asio::async_write(s_, b, use_nothrow);
  co_return ec;
}

void socket_channel::shutdown_send() {
  error_code ignored;
  s_.shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace porthole::net
