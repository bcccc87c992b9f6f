#include "net/dialer.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "http/base64.h"
#include "net/error.h"

// GCC 12 mistakes Asio's recycling allocator for coroutine frames for a
// mismatched new/delete (a known false positive, e.g. erigontech/silkworm#2046).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace porthole::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The longest reply head accepted from a proxy.
constexpr std::size_t proxy_reply_head_limit = 16 * 1024;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower_case(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lower(c);
  }
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// A port as a CONNECT request and an endpoint need it: 1 to 65535 in digits.
bool is_port_number(std::string_view port) {
  if (port.empty() || port.size() > 5) {
    return false;
  }
  unsigned value = 0;
  for (const char c : port) {
    if (!is_digit(c)) {
      return false;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value >= 1 && value <= 65535;
}

// Host names end up in a request line: nothing that could end or split it.
bool is_plain_host(std::string_view host) {
  if (host.empty() || host.size() > 255) {
    return false;
  }
  for (const char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '/' || c == '@' || c == '[' || c == ']') {
      return false;
    }
  }
  return true;
}

// "host:port", with IPv6 addresses in brackets.
std::string authority(const std::string& host, const std::string& port) {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + port;
  }
  return host + ":" + port;
}

std::string percent_decode(std::string_view text, const std::string& url) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      throw std::invalid_argument("bad percent-encoding in the credentials of proxy URL " + url);
    }
    out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return out;
}

std::string connect_request(const http_proxy& proxy, const std::string& host,
                            const std::string& port) {
  const std::string target = authority(host, port);
  std::string request = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
  if (!proxy.user_pass.empty()) {
    request += "Proxy-Authorization: Basic " + http::base64(proxy.user_pass) + "\r\n";
  }
  request += "\r\n";
  return request;
}

// The status line for a log, without anything a terminal would interpret.
std::string printable(std::string_view line) {
  std::string out;
  for (const char c : line.substr(0, 120)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  return out;
}

// The status code of an "HTTP/1.x ddd reason" line; 0 if it is not one.
int status_code(std::string_view line) {
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || !is_digit(line[7]) || line[8] != ' ' ||
      !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) ||
      (line.size() > 12 && line[12] != ' ')) {
    return 0;
  }
  return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

// Reads the proxy's reply head and not one byte more: bytes after it belong
// to the tunnelled connection (a server that speaks first). Each step peeks
// at what has arrived and consumes it only up to the blank line. A head over
// the bound is a bad_proxy_reply; the end of the stream before the blank line
// is asio::error::eof.
asio::awaitable<std::tuple<error_code, std::string, tcp::socket>> read_reply_head(
    tcp::socket socket) {
  std::string head;
  std::array<char, 2048> chunk;
  while (head.size() < proxy_reply_head_limit) {
    const std::size_t room = std::min(chunk.size(), proxy_reply_head_limit - head.size());
    auto [peek_error, peeked] = co_await socket.async_receive(asio::buffer(chunk.data(), room),
                                                              tcp::socket::message_peek, use_tuple);
    if (peek_error) {
      co_return std::tuple{peek_error, std::move(head), std::move(socket)};
    }
    const std::size_t before = head.size();
    head.append(chunk.data(), peeked);
    const std::size_t end = head.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end != std::string::npos) {
      head.resize(end + 4);
    }
    auto [read_error, consumed] = co_await asio::async_read(
        socket, asio::buffer(chunk.data(), head.size() - before), use_tuple);
    if (read_error || end != std::string::npos) {
      co_return std::tuple{read_error, std::move(head), std::move(socket)};
    }
  }
  co_return std::tuple{make_error_code(error::bad_proxy_reply), std::move(head), std::move(socket)};
}

// "10s", or "300ms" for a time that is not whole seconds.
std::string duration_text(std::chrono::milliseconds time) {
  if (time.count() % 1000 == 0) {
    return std::to_string(time.count() / 1000) + "s";
  }
  return std::to_string(time.count()) + "ms";
}

// What a refusal means for the user, after the proxy's own status line. Some
// proxies (tinyproxy 1.11) answer wrong credentials with 401, not 407.
std::string refusal_hint(int status, const std::string& target) {
  if (status == 407 || status == 401) {
    return " (proxy authentication needed or refused: check user:password in the proxy URL)";
  }
  if (status == 403) {
    return " (the proxy does not allow connections to " + target + ")";
  }
  return {};
}

// Asks the proxy for a tunnel to host:port over `socket`. A failure says, in
// words, what the proxy did.
asio::awaitable<dial_result> request_tunnel(tcp::socket socket, http_proxy proxy, std::string host,
                                            std::string port) {
  const std::string via = "HTTP proxy " + authority(proxy.host, proxy.port);
  const std::string target = authority(host, port);
  const std::string request = connect_request(proxy, host, port);
  auto [write_error, written] =
      co_await asio::async_write(socket, asio::buffer(request), use_tuple);
  if (write_error) {
    co_return dial_result{write_error, std::move(socket),
                          "lost the connection to the " + via + " sending CONNECT " + target +
                              ": " + write_error.message()};
  }
  auto [read_error, head, tunnel] = co_await read_reply_head(std::move(socket));
  if (read_error == asio::error::eof) {
    co_return dial_result{
        error::bad_proxy_reply, std::move(tunnel),
        via + " closed the connection " +
            (head.empty() ? "without answering" : "in the middle of its answer to") + " CONNECT " +
            target};
  }
  if (read_error == error::bad_proxy_reply) {
    co_return dial_result{read_error, std::move(tunnel),
                          via + " answered CONNECT " + target + " with a head over " +
                              std::to_string(proxy_reply_head_limit / 1024) + " KiB"};
  }
  if (read_error) {
    co_return dial_result{read_error, std::move(tunnel),
                          "lost the connection to the " + via +
                              " waiting for its answer to CONNECT " + target + ": " +
                              read_error.message()};
  }
  const std::string_view status_line = std::string_view(head).substr(0, head.find("\r\n"));
  const int status = status_code(status_line);
  if (status == 0) {
    co_return dial_result{error::bad_proxy_reply, std::move(tunnel),
                          via + " answered CONNECT " + target +
                              " with something other than HTTP: \"" + printable(status_line) +
                              "\""};
  }
  if (status < 200 || status > 299) {
    // "407 Proxy Authentication Required", as the proxy put it.
    std::string status_text = printable(status_line.substr(9));
    while (status_text.ends_with(' ')) {
      status_text.pop_back();
    }
    co_return dial_result{
        error::proxy_refused, std::move(tunnel),
        via + " refused CONNECT " + target + ": " + status_text + refusal_hint(status, target)};
  }
  co_return dial_result{error_code(), std::move(tunnel), {}};
}

// Connects to the first of `endpoints` that accepts.
asio::awaitable<dial_result> connect_first(tcp::resolver::results_type endpoints) {
  tcp::socket socket(co_await asio::this_coro::executor);
  auto [connect_error, endpoint] = co_await asio::async_connect(socket, endpoints, use_tuple);
  if (!connect_error) {
    error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    co_return dial_result{ec, std::move(socket), ec ? ec.message() : std::string()};
  }
  co_return dial_result{connect_error, std::move(socket), connect_error.message()};
}

using resolve_channel = asio::experimental::channel<void(error_code, tcp::resolver::results_type)>;

// getaddrinfo cannot be interrupted, and cancelling a resolve still waits for
// it: so the resolve runs on its own and hands its answer over, and a dial
// past its deadline need not wait for it.
asio::awaitable<void> resolve_into(std::shared_ptr<resolve_channel> answer, std::string host,
                                   std::string port) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto [ec, endpoints] = co_await resolver.async_resolve(host, port, use_tuple);
  answer->try_send(ec, std::move(endpoints));
}

void log_escaped(std::exception_ptr escaped) {
  if (!escaped) {
    return;
  }
  try {
    std::rethrow_exception(escaped);
  } catch (const std::exception& e) {
    spdlog::error("resolving for dial: {}", e.what());
  }
}

// A no_proxy entry: "*", a host or IP, or a domain (leading dot optional)
// whose subdomains it also covers.
bool no_proxy_matches(std::string_view list, const std::string& target_host) {
  std::string host = lower_case(target_host);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (!host.empty() && host.back() == '.') {
    host.pop_back();
  }
  const bool host_is_ip = is_ip_literal(host);
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    std::string_view entry = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) {
      entry.remove_prefix(1);
    }
    while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) {
      entry.remove_suffix(1);
    }
    if (entry == "*") {
      return true;
    }
    if (entry.starts_with("*.")) {
      entry.remove_prefix(1);
    }
    if (entry.starts_with('.')) {
      entry.remove_prefix(1);
    }
    if (entry.size() > 2 && entry.front() == '[' && entry.back() == ']') {
      entry = entry.substr(1, entry.size() - 2);
    }
    if (entry.ends_with('.')) {
      entry.remove_suffix(1);
    }
    if (entry.empty()) {
      continue;
    }
    const std::string pattern = lower_case(entry);
    if (host == pattern) {
      return true;
    }
    if (!host_is_ip && host.size() > pattern.size() && host.ends_with(pattern) &&
        host[host.size() - pattern.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

const char* first_set(std::initializer_list<const char*> names, const char** which) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') {
      *which = name;
      return value;
    }
  }
  return nullptr;
}

}  // namespace

http_proxy http_proxy::parse(const std::string& url) {
  if (url.empty()) {
    throw std::invalid_argument("empty proxy URL");
  }
  std::string_view rest(url);
  if (const std::size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    const std::string scheme = lower_case(rest.substr(0, scheme_end));
    if (scheme != "http") {
      throw std::invalid_argument("unsupported proxy scheme '" + scheme + "' in " + url +
                                  " (only http:// proxies are supported)");
    }
    rest.remove_prefix(scheme_end + 3);
  }
  const std::size_t path_start = rest.find_first_of("/?#");
  if (path_start != std::string_view::npos) {
    if (rest.substr(path_start) != "/") {
      throw std::invalid_argument("proxy URL must not have a path or query: " + url);
    }
    rest = rest.substr(0, path_start);
  }

  http_proxy proxy;
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const std::size_t colon = userinfo.find(':');
    const std::string user = percent_decode(userinfo.substr(0, colon), url);
    const std::string pass = colon == std::string_view::npos
                                 ? std::string()
                                 : percent_decode(userinfo.substr(colon + 1), url);
    if (user.empty()) {
      throw std::invalid_argument("empty user name in proxy URL " + url);
    }
    proxy.user_pass = user + ":" + pass;
  }

  std::string_view port;
  if (rest.starts_with('[')) {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      throw std::invalid_argument("unterminated [IPv6 address] in proxy URL " + url);
    }
    proxy.host = std::string(rest.substr(1, close - 1));
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        throw std::invalid_argument("unexpected text after ] in proxy URL " + url);
      }
      port = after.substr(1);
      if (port.empty()) {
        throw std::invalid_argument("empty port in proxy URL " + url);
      }
    }
    if (!is_ip_literal(proxy.host) || proxy.host.find(':') == std::string::npos) {
      throw std::invalid_argument("bad IPv6 address in proxy URL " + url);
    }
  } else {
    const std::size_t colon = rest.find(':');
    if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos) {
      throw std::invalid_argument("IPv6 proxy address must be in brackets: " + url);
    }
    proxy.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) {
        throw std::invalid_argument("empty port in proxy URL " + url);
      }
    }
  }
  if (proxy.host.empty()) {
    throw std::invalid_argument("no host in proxy URL " + url);
  }
  if (!is_plain_host(proxy.host)) {
    throw std::invalid_argument("bad host in proxy URL " + url);
  }
  if (!port.empty()) {
    if (!is_port_number(port)) {
      throw std::invalid_argument("bad port '" + std::string(port) + "' in proxy URL " + url);
    }
    proxy.port = std::string(port);
  }
  return proxy;
}

std::optional<http_proxy> http_proxy::choose(const std::optional<std::string>& configured,
                                             const std::string& target_host) {
  if (!configured) {
    return from_environment(target_host);
  }
  if (configured->empty()) {
    return std::nullopt;
  }
  return parse(*configured);
}

std::optional<http_proxy> http_proxy::from_environment(const std::string& target_host) {
  const char* which = nullptr;
  if (const char* no_proxy = first_set({"no_proxy", "NO_PROXY"}, &which)) {
    if (no_proxy_matches(no_proxy, target_host)) {
      return std::nullopt;
    }
  }
  const char* url = first_set({"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"}, &which);
  if (url == nullptr) {
    return std::nullopt;
  }
  try {
    return parse(url);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(which) + ": " + e.what());
  }
}

namespace {

// Answers of recent look-ups: a client dials its local service once per
// public connection, and a thread hop to getaddrinfo each time is not free.
class resolve_cache {
 public:
  std::optional<tcp::resolver::results_type> find(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.expires < std::chrono::steady_clock::now()) {
      return std::nullopt;
    }
    return it->second.results;
  }

  void put(const std::string& key, const tcp::resolver::results_type& results) {
    std::lock_guard lock(mutex_);
    if (entries_.size() >= 1024) {
      entries_.clear();
    }
    entries_[key] = {results, std::chrono::steady_clock::now() + std::chrono::seconds(30)};
  }

 private:
  struct entry {
    tcp::resolver::results_type results;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;
};

resolve_cache& cache() {
  static resolve_cache instance;
  return instance;
}

// An IP literal needs no look-up at all.
std::optional<tcp::resolver::results_type> known_endpoints(const std::string& host,
                                                           const std::string& port) {
  error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec && is_port_number(port)) {
    return tcp::resolver::results_type::create(
        tcp::endpoint(addr, static_cast<unsigned short>(std::stoi(port))), host, port);
  }
  return cache().find(host + ":" + port);
}

}  // namespace

namespace {

// Looks host:port up within the deadline: the endpoints, or why not.
asio::awaitable<std::variant<error_code, tcp::resolver::results_type>> resolve(
    std::string host, std::string port, asio::steady_timer& deadline) {
  const auto executor = co_await asio::this_coro::executor;
  auto answer = std::make_shared<resolve_channel>(executor, 1);
  asio::co_spawn(executor, resolve_into(answer, std::move(host), std::move(port)), &log_escaped);
  auto resolved = co_await (answer->async_receive(use_tuple) || deadline.async_wait(use_tuple));
  if (resolved.index() == 1) {
    co_return error_code(error::timed_out);
  }
  auto [ec, endpoints] = std::get<0>(std::move(resolved));
  if (ec) {
    co_return ec;
  }
  co_return std::move(endpoints);
}

}  // namespace

asio::awaitable<dial_result> dial(std::string host, std::string port,
                                  std::optional<http_proxy> proxy,
                                  std::chrono::milliseconds timeout) {
  const auto executor = co_await asio::this_coro::executor;
  if (!is_plain_host(host) || (proxy && !is_port_number(port))) {
    const error_code invalid = asio::error::invalid_argument;
    co_return dial_result{invalid, tcp::socket(executor), invalid.message()};
  }
  asio::steady_timer deadline(executor, timeout);
  const std::string proxy_address = proxy ? authority(proxy->host, proxy->port) : std::string();
  // Until the proxy answers, a failure is that of reaching the next hop.
  const auto unreachable = [&](error_code ec) {
    return dial_result{ec, tcp::socket(executor),
                       proxy ? "cannot reach the HTTP proxy " + proxy_address + ": " + ec.message()
                             : ec.message()};
  };

  std::optional<tcp::resolver::results_type> endpoints;
  if (!proxy) {
    endpoints = known_endpoints(host, port);
  }
  if (!endpoints) {
    auto resolved =
        co_await resolve(proxy ? proxy->host : host, proxy ? proxy->port : port, deadline);
    if (auto* failure = std::get_if<error_code>(&resolved)) {
      co_return unreachable(*failure);
    }
    endpoints = std::get<tcp::resolver::results_type>(std::move(resolved));
    if (!proxy) {
      cache().put(host + ":" + port, *endpoints);
    }
  }

  // Each step races the same deadline; the loser of a race is cancelled, and
  // awaited before the race ends.
  auto connected =
      co_await (connect_first(std::move(*endpoints)) || deadline.async_wait(use_tuple));
  if (connected.index() == 1) {
    co_return unreachable(error::timed_out);
  }
  dial_result result = std::get<0>(std::move(connected));
  if (result.error) {
    error_code ignored;
    result.socket.close(ignored);
    co_return unreachable(result.error);
  }
  if (!proxy) {
    co_return result;
  }

  auto tunnelled =
      co_await (request_tunnel(std::move(result.socket), std::move(*proxy), host, port) ||
                deadline.async_wait(use_tuple));
  if (tunnelled.index() == 1) {
    co_return dial_result{error::timed_out, tcp::socket(executor),
                          "HTTP proxy " + proxy_address + " did not answer CONNECT " +
                              authority(host, port) + " within " + duration_text(timeout)};
  }
  result = std::get<0>(std::move(tunnelled));
  if (result.error) {
    error_code ignored;
    result.socket.close(ignored);
  }
  co_return result;
}

}  // namespace porthole::net
