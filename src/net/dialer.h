#pragma once
// Dialing TCP connections, directly or through an HTTP proxy with CONNECT.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <optional>
#include <string>

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

  /// The proxy to reach `target_host` through, for a client whose
  /// configuration (config file `http_proxy:` or `--http-proxy`) may name one:
  ///  - `configured` absent: from_environment(target_host);
  ///  - `configured` empty: no proxy, whatever the environment says;
  ///  - otherwise parse(*configured), used as given: no_proxy / NO_PROXY only
  ///    filter the environment's proxy, not one chosen explicitly.
  /// Throws std::invalid_argument as parse() and from_environment() do.
  static std::optional<http_proxy> choose(const std::optional<std::string>& configured,
                                          const std::string& target_host);
};

/// How a dial ended: a connected socket, or the error and why in words.
struct dial_result {
  boost::system::error_code error;
  boost::asio::ip::tcp::socket socket;  ///< open only when `error` is not set
  /// When `error` is set, why, for a log line after "cannot reach <what>: ".
  /// A direct dial gives the error's message. Through a proxy it names the
  /// proxy and what went wrong with it: "cannot reach the HTTP proxy H:P:
  /// <reason>", "HTTP proxy H:P refused CONNECT S:P: <status> <reason line>
  /// (<hint for 401, 407 and 403>)", a malformed reply, or no answer in time.
  /// Never contains the proxy's credentials.
  std::string failure;
};

/// Resolves and connects to host:port, through `proxy` if given, within
/// `timeout`. Errors are values: a refused connection, a time-out
/// (net::error::timed_out), a proxy that answers other than 2xx
/// (net::error::proxy_refused) or a bad proxy reply (net::error::bad_proxy_reply).
boost::asio::awaitable<dial_result> dial(std::string host, std::string port,
                                         std::optional<http_proxy> proxy,
                                         std::chrono::milliseconds timeout);

}  // namespace porthole::net
