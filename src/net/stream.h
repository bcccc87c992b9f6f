#pragma once
// The stream types porthole's connections use, and the completion token that
// turns errors into values on the data path.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace porthole::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

/// A TLS connection over TCP: the tunnel's control and proxy connections, and
/// public HTTPS.
using tls_stream = asio::ssl::stream<tcp::socket>;

/// co_await an operation with this and get (error_code, result...) instead of
/// an exception: peer resets and time-outs are expected, not exceptional.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// The TCP socket under a stream.
inline tcp::socket& lowest_socket(tcp::socket& s) {
  return s;
}
inline tcp::socket& lowest_socket(tls_stream& s) {
  return s.next_layer();
}

/// Closes the socket under a stream without a TLS close_notify, ignoring errors.
template <class Stream>
void close_stream(Stream& s) {
  error_code ignored;
  lowest_socket(s).shutdown(tcp::socket::shutdown_both, ignored);
  lowest_socket(s).close(ignored);
}

/// "ip:port" of an endpoint, IPv6 addresses in brackets.
std::string to_string(const tcp::endpoint& ep);

}  // namespace porthole::net
