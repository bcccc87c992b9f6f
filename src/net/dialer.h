#pragma once
// Dialing TCP connections, directly or through an HTTP proxy with CONNECT.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <tuple>

namespace porthole::net {

/// An HTTP proxy to tunnel through with CONNECT.
struct http_proxy {
  std::string host;
  std::string port = "80";
  std::string user_pass;  ///< "user:pass" for Proxy-Authorization: Basic, or empty

  /// Parses "http://[user:pass@]host[:port][/]" or "host:port". Throws
  /// std::invalid_argument naming what is wrong.
  static http_proxy parse(const std::string& url);

  /// The proxy named by https_proxy, HTTPS_PROXY, http_proxy or HTTP_PROXY (in
  /// that order) unless `target_host` matches no_proxy / NO_PROXY. Throws
  /// std::invalid_argument, naming the variable, if its value does not parse.
  static std::optional<http_proxy> from_environment(const std::string& target_host);
};

/// Resolves and connects to host:port, through `proxy` if given, within
/// `timeout`. Errors are values: a refused connection, a time-out, a proxy that
/// answers other than 2xx (net::error::proxy_refused) or a bad proxy reply.
boost::asio::awaitable<std::tuple<boost::system::error_code, boost::asio::ip::tcp::socket>> dial(
    std::string host, std::string port, std::optional<http_proxy> proxy,
    std::chrono::milliseconds timeout);

}  // namespace porthole::net
