#include "net/dialer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <map>
#include <optional>
#include <string>

#include "net/error.h"

namespace porthole::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Only a guard against a hung test: every exchange ends on its own first.
constexpr auto guard_time = std::chrono::seconds(20);
constexpr auto dial_timeout = std::chrono::milliseconds(5000);

// http_proxy::parse --------------------------------------------------------

TEST(HttpProxyParse, ReadsAFullUrl) {
  const http_proxy proxy = http_proxy::parse("http://user:secret@proxy.example:3128/");
  EXPECT_EQ(proxy.host, "proxy.example");
  EXPECT_EQ(proxy.port, "3128");
  EXPECT_EQ(proxy.user_pass, "user:secret");
}

TEST(HttpProxyParse, ReadsHostAndPortWithoutScheme) {
  const http_proxy proxy = http_proxy::parse("proxy.example:8080");
  EXPECT_EQ(proxy.host, "proxy.example");
  EXPECT_EQ(proxy.port, "8080");
  EXPECT_EQ(proxy.user_pass, "");
}

TEST(HttpProxyParse, DefaultsToPort80) {
  EXPECT_EQ(http_proxy::parse("http://proxy.example").port, "80");
  EXPECT_EQ(http_proxy::parse("HTTP://proxy.example/").port, "80");
}

TEST(HttpProxyParse, ReadsABracketedIpv6Address) {
  const http_proxy proxy = http_proxy::parse("http://[::1]:3128");
  EXPECT_EQ(proxy.host, "::1");
  EXPECT_EQ(proxy.port, "3128");
}

TEST(HttpProxyParse, DecodesPercentEncodedCredentials) {
  EXPECT_EQ(http_proxy::parse("http://us%40er:p%3As%2Fs@proxy:1").user_pass, "us@er:p:s/s");
}

TEST(HttpProxyParse, RefusesWhatItCannotUse) {
  const std::map<std::string, std::string> cases = {
      {"", "empty"},
      {"https://proxy:443", "unsupported proxy scheme 'https'"},
      {"socks5://proxy:1080", "unsupported proxy scheme 'socks5'"},
      {"http://:3128", "no host"},
      {"http://proxy:", "empty port"},
      {"http://proxy:http", "bad port 'http'"},
      {"http://proxy:70000", "bad port '70000'"},
      {"http://proxy:0", "bad port '0'"},
      {"http://proxy:3128/path", "path"},
      {"http://::1:3128", "brackets"},
      {"http://[::1", "unterminated"},
      {"http://[proxy]:1", "bad IPv6"},
      {"http://:pw@proxy:1", "empty user name"},
      {"http://u:%zz@proxy:1", "percent-encoding"},
      {"http://pro xy:1", "bad host"},
  };
  for (const auto& [url, reason] : cases) {
    try {
      http_proxy::parse(url);
      ADD_FAILURE() << "accepted " << url;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(reason)) << url;
    }
  }
}

// http_proxy::from_environment ---------------------------------------------

class ProxyEnvironment : public ::testing::Test {
 protected:
  static constexpr std::array names = {"https_proxy", "HTTPS_PROXY", "http_proxy",
                                       "HTTP_PROXY",  "no_proxy",    "NO_PROXY"};

  void SetUp() override {
    for (const char* name : names) {
      if (const char* value = std::getenv(name)) {
        saved_[name] = value;
      }
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const char* name : names) {
      ::unsetenv(name);
    }
    for (const auto& [name, value] : saved_) {
      ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  static void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  std::map<std::string, std::string> saved_;
};

TEST_F(ProxyEnvironment, NoVariableMeansNoProxy) {
  EXPECT_FALSE(http_proxy::from_environment("example.com"));
}

TEST_F(ProxyEnvironment, HttpsProxyComesFirst) {
  set("HTTP_PROXY", "http://four:4");
  set("http_proxy", "http://three:3");
  set("HTTPS_PROXY", "http://two:2");
  EXPECT_EQ(http_proxy::from_environment("example.com")->host, "two");
  set("https_proxy", "http://one:1");
  EXPECT_EQ(http_proxy::from_environment("example.com")->host, "one");
}

TEST_F(ProxyEnvironment, HttpProxyIsUsedWhenNoHttpsProxyIsSet) {
  set("HTTP_PROXY", "proxy.corp:8080");
  const auto proxy = http_proxy::from_environment("example.com");
  ASSERT_TRUE(proxy);
  EXPECT_EQ(proxy->host, "proxy.corp");
  EXPECT_EQ(proxy->port, "8080");
}

TEST_F(ProxyEnvironment, NoProxyMatchesHostsAndDomainSuffixes) {
  set("https_proxy", "http://proxy:3128");
  set("no_proxy", " internal.corp , .Example.COM,10.0.0.1");
  EXPECT_FALSE(http_proxy::from_environment("internal.corp"));
  EXPECT_FALSE(http_proxy::from_environment("api.internal.corp"));
  EXPECT_FALSE(http_proxy::from_environment("example.com"));
  EXPECT_FALSE(http_proxy::from_environment("API.example.com"));
  EXPECT_FALSE(http_proxy::from_environment("10.0.0.1"));
  EXPECT_TRUE(http_proxy::from_environment("badexample.com"));
  EXPECT_TRUE(http_proxy::from_environment("internal.corp.evil"));
  EXPECT_TRUE(http_proxy::from_environment("10.0.0.10"));
  EXPECT_TRUE(http_proxy::from_environment("110.0.0.1"));
}

TEST_F(ProxyEnvironment, NoProxyStarMatchesEverything) {
  set("https_proxy", "http://proxy:3128");
  set("NO_PROXY", "*");
  EXPECT_FALSE(http_proxy::from_environment("example.com"));
}

TEST_F(ProxyEnvironment, LowerCaseNoProxyWins) {
  set("https_proxy", "http://proxy:3128");
  set("no_proxy", "example.com");
  set("NO_PROXY", "*");
  EXPECT_FALSE(http_proxy::from_environment("example.com"));
  EXPECT_TRUE(http_proxy::from_environment("example.org"));
}

TEST_F(ProxyEnvironment, AMalformedVariableIsNamedInTheError) {
  set("https_proxy", "socks5://proxy:1080");
  try {
    http_proxy::from_environment("example.com");
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("https_proxy"));
  }
}

// http_proxy::choose ------------------------------------------------------

TEST_F(ProxyEnvironment, ChooseWithoutAConfiguredProxyAsksTheEnvironment) {
  EXPECT_FALSE(http_proxy::choose(std::nullopt, "example.com"));
  set("https_proxy", "http://env-proxy:3128");
  const auto proxy = http_proxy::choose(std::nullopt, "example.com");
  ASSERT_TRUE(proxy);
  EXPECT_EQ(proxy->host, "env-proxy");
  set("no_proxy", "example.com");
  EXPECT_FALSE(http_proxy::choose(std::nullopt, "example.com"));
}

TEST_F(ProxyEnvironment, ChooseUsesTheConfiguredProxyOverTheEnvironmentAndNoProxy) {
  set("https_proxy", "http://env-proxy:3128");
  set("no_proxy", "*");
  const auto proxy =
      http_proxy::choose(std::string("http://user:pw@config-proxy:8080"), "example.com");
  ASSERT_TRUE(proxy);
  EXPECT_EQ(proxy->host, "config-proxy");
  EXPECT_EQ(proxy->port, "8080");
  EXPECT_EQ(proxy->user_pass, "user:pw");
}

TEST_F(ProxyEnvironment, ChooseWithAnEmptyConfiguredProxyConnectsDirectly) {
  set("https_proxy", "http://env-proxy:3128");
  EXPECT_FALSE(http_proxy::choose(std::string(), "example.com"));
}

TEST_F(ProxyEnvironment, ChooseRefusesAConfiguredProxyThatDoesNotParse) {
  set("https_proxy", "http://env-proxy:3128");
  EXPECT_THROW(http_proxy::choose(std::string("socks5://proxy:1080"), "example.com"),
               std::invalid_argument);
}

TEST_F(ProxyEnvironment, ChooseReportsAMalformedEnvironmentVariable) {
  set("HTTP_PROXY", "http://proxy:notaport");
  try {
    http_proxy::choose(std::nullopt, "example.com");
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("HTTP_PROXY"));
  }
}

// dial() -------------------------------------------------------------------

tcp::acceptor loopback_acceptor(asio::io_context& io) {
  return tcp::acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
}

std::string port_of(const tcp::acceptor& acceptor) {
  return std::to_string(acceptor.local_endpoint().port());
}

template <typename T>
T finished(std::future<T>& future) {
  if (future.wait_for(0s) != std::future_status::ready) {
    throw std::runtime_error("the exchange did not finish within the guard time");
  }
  return future.get();
}

// use_future needs a result it can default-construct; a socket is not one.
template <typename T>
asio::awaitable<std::optional<T>> optional_of(asio::awaitable<T> task) {
  co_return co_await std::move(task);
}

// Runs `task` and whatever else was spawned until all of it is done.
template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  auto future = asio::co_spawn(io, optional_of(std::move(task)), asio::use_future);
  io.run_for(guard_time);
  return *finished(future);
}

asio::awaitable<error_code> accept_one(tcp::acceptor& acceptor) {
  auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
  co_return ec;
}

// A backend that reads `expect.size()` bytes, answers `answer` and closes;
// `greeting` is sent first, as by a server that speaks first.
asio::awaitable<std::string> backend_once(tcp::acceptor& acceptor, std::size_t expect,
                                          std::string answer, std::string greeting = {}) {
  auto [accept_error, socket] = co_await acceptor.async_accept(use_tuple);
  if (accept_error) {
    co_return "accept failed: " + accept_error.message();
  }
  if (!greeting.empty()) {
    co_await asio::async_write(socket, asio::buffer(greeting), use_tuple);
  }
  std::string received(expect, '\0');
  co_await asio::async_read(socket, asio::buffer(received), use_tuple);
  co_await asio::async_write(socket, asio::buffer(answer), use_tuple);
  co_return received;
}

struct proxy_script {
  enum then { splice, wait_for_client, hang_up };
  std::string reply = "HTTP/1.1 200 Connection established\r\n\r\n";
  bool answer = true;         // false: read the request, then say nothing until the client leaves
  then after_reply = splice;  // splice: relay to 127.0.0.1:target_port
  std::string target_port = "";
};

asio::awaitable<void> relay(tcp::socket& from, tcp::socket& to) {
  std::array<char, 4096> buffer;
  while (true) {
    auto [read_error, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
    if (read_error) {
      error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    auto [write_error, written] =
        co_await asio::async_write(to, asio::buffer(buffer, n), use_tuple);
    if (write_error) {
      co_return;
    }
  }
}

asio::awaitable<void> until_closed(tcp::socket& socket) {
  std::array<char, 256> ignored;
  while (true) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(ignored), use_tuple);
    if (ec) {
      co_return;
    }
  }
}

// A tiny HTTP CONNECT proxy for one connection; returns the request head it
// received.
asio::awaitable<std::string> proxy_once(tcp::acceptor& acceptor, proxy_script script) {
  auto [accept_error, client] = co_await acceptor.async_accept(use_tuple);
  if (accept_error) {
    co_return "accept failed: " + accept_error.message();
  }
  std::string head;
  auto [read_error, head_size] = co_await asio::async_read_until(
      client, asio::dynamic_buffer(head, 16 * 1024), "\r\n\r\n", use_tuple);
  if (read_error) {
    co_return "read failed: " + read_error.message();
  }
  if (script.answer) {
    co_await asio::async_write(client, asio::buffer(script.reply), use_tuple);
  }
  if (!script.answer || script.after_reply == proxy_script::wait_for_client) {
    co_await until_closed(client);
    co_return head;
  }
  if (script.after_reply == proxy_script::hang_up) {
    co_return head;
  }
  tcp::socket target(client.get_executor());
  auto [connect_error] = co_await target.async_connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                    static_cast<unsigned short>(std::stoi(script.target_port))),
      use_tuple);
  if (connect_error) {
    co_return "connect failed: " + connect_error.message();
  }
  co_await (relay(client, target) && relay(target, client));
  co_return head;
}

struct exchange {
  error_code dialed;
  std::string failure;
  std::string reply;  // what the client read after sending "hello"
};

// Dials, sends "hello" and reads `reply_size` bytes.
asio::awaitable<exchange> dial_and_talk(std::string port, std::optional<http_proxy> proxy,
                                        std::size_t reply_size) {
  exchange result;
  auto [ec, socket, failure] = co_await dial("127.0.0.1", port, std::move(proxy), dial_timeout);
  result.dialed = ec;
  result.failure = failure;
  if (ec) {
    co_return result;
  }
  co_await asio::async_write(socket, asio::buffer(std::string("hello")), use_tuple);
  result.reply.resize(reply_size);
  auto [read_error, n] = co_await asio::async_read(socket, asio::buffer(result.reply), use_tuple);
  result.reply.resize(n);
  co_return result;
}

TEST(Dial, ConnectsDirectlyToALoopbackListener) {
  asio::io_context io;
  tcp::acceptor backend = loopback_acceptor(io);
  auto received = asio::co_spawn(io, backend_once(backend, 5, "world"), asio::use_future);

  const exchange result = run(io, dial_and_talk(port_of(backend), std::nullopt, 5));

  EXPECT_FALSE(result.dialed) << result.dialed.message();
  EXPECT_EQ(result.reply, "world");
  EXPECT_EQ(finished(received), "hello");
}

TEST(Dial, ResolvesANameAndDisablesNagle) {
  asio::io_context io;
  tcp::acceptor backend = loopback_acceptor(io);
  auto accepted = asio::co_spawn(io, accept_one(backend), asio::use_future);

  auto [ec, socket, failure] =
      run(io, dial("localhost", port_of(backend), std::nullopt, dial_timeout));

  ASSERT_FALSE(ec) << ec.message();
  tcp::no_delay no_delay;
  socket.get_option(no_delay);
  EXPECT_TRUE(no_delay.value());
  EXPECT_FALSE(finished(accepted));
}

TEST(Dial, ARefusedPortIsAnError) {
  asio::io_context io;
  std::string port;
  {
    tcp::acceptor closed = loopback_acceptor(io);
    port = port_of(closed);
  }
  auto [ec, socket, failure] = run(io, dial("127.0.0.1", port, std::nullopt, dial_timeout));
  EXPECT_EQ(ec, asio::error::connection_refused) << ec.message();
  EXPECT_FALSE(socket.is_open());
}

TEST(Dial, CarriesBytesThroughAConnectProxy) {
  asio::io_context io;
  tcp::acceptor backend = loopback_acceptor(io);
  tcp::acceptor proxy = loopback_acceptor(io);
  auto received = asio::co_spawn(io, backend_once(backend, 5, "world"), asio::use_future);
  auto head =
      asio::co_spawn(io, proxy_once(proxy, {.target_port = port_of(backend)}), asio::use_future);

  const exchange result =
      run(io, dial_and_talk(port_of(backend), http_proxy{"127.0.0.1", port_of(proxy), ""}, 5));

  EXPECT_FALSE(result.dialed) << result.dialed.message();
  EXPECT_EQ(result.reply, "world");
  EXPECT_EQ(finished(received), "hello");
  const std::string target = "127.0.0.1:" + port_of(backend);
  EXPECT_EQ(finished(head), "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
}

TEST(Dial, SendsProxyCredentialsAsBasicAuthorization) {
  asio::io_context io;
  tcp::acceptor backend = loopback_acceptor(io);
  tcp::acceptor proxy = loopback_acceptor(io);
  auto received = asio::co_spawn(io, backend_once(backend, 5, "world"), asio::use_future);
  auto head =
      asio::co_spawn(io, proxy_once(proxy, {.target_port = port_of(backend)}), asio::use_future);

  const exchange result = run(
      io, dial_and_talk(
              port_of(backend),
              http_proxy::parse("http://aladdin:open%20sesame@127.0.0.1:" + port_of(proxy)), 5));

  EXPECT_FALSE(result.dialed) << result.dialed.message();
  EXPECT_THAT(finished(head),
              HasSubstr("\r\nProxy-Authorization: Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
  EXPECT_EQ(finished(received), "hello");
}

TEST(Dial, KeepsBytesThatFollowTheProxyReplyHead) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  // Reply head and the backend's first bytes arrive in one segment.
  auto head = asio::co_spawn(
      io,
      proxy_once(proxy, {.reply = "HTTP/1.0 200 OK\r\nVia: test\r\n\r\nSSH-2.0-x\r\n",
                         .after_reply = proxy_script::wait_for_client}),
      asio::use_future);

  const exchange result =
      run(io, dial_and_talk("22", http_proxy{"127.0.0.1", port_of(proxy), ""}, 11));

  EXPECT_FALSE(result.dialed) << result.dialed.message();
  EXPECT_EQ(result.reply, "SSH-2.0-x\r\n");
  finished(head);
}

TEST(Dial, AProxyAnswering407IsProxyRefused) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  auto head =
      asio::co_spawn(io,
                     proxy_once(proxy, {.reply = "HTTP/1.1 407 Proxy Authentication Required\r\n"
                                                 "Proxy-Authenticate: Basic realm=\"corp\"\r\n"
                                                 "Content-Length: 0\r\n\r\n",
                                        .after_reply = proxy_script::wait_for_client}),
                     asio::use_future);

  auto [ec, socket, failure] = run(
      io, dial("example.com", "443", http_proxy{"127.0.0.1", port_of(proxy), ""}, dial_timeout));

  EXPECT_EQ(ec, error::proxy_refused) << ec.message();
  EXPECT_FALSE(socket.is_open());
  EXPECT_EQ(failure, "HTTP proxy 127.0.0.1:" + port_of(proxy) +
                         " refused CONNECT example.com:443: 407 Proxy Authentication Required "
                         "(proxy authentication needed or refused: check user:password in the "
                         "proxy URL)");
  EXPECT_THAT(finished(head), HasSubstr("CONNECT example.com:443 HTTP/1.1\r\n"));
}

// Dials example.com:443 through a proxy on loopback that answers `reply` and
// waits for the client to leave; returns what dial() said.
dial_result dial_through_proxy_answering(std::string reply, std::string user_pass = std::string()) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  auto head = asio::co_spawn(
      io,
      proxy_once(proxy, {.reply = std::move(reply), .after_reply = proxy_script::wait_for_client}),
      asio::use_future);
  dial_result result =
      run(io, dial("example.com", "443",
                   http_proxy{"127.0.0.1", port_of(proxy), std::move(user_pass)}, dial_timeout));
  finished(head);
  return result;
}

TEST(Dial, ARefusalWithWrongCredentialsIsExplainedWithoutThePassword) {
  const dial_result result = dial_through_proxy_answering(
      "HTTP/1.0 407 Proxy Authentication Required\r\nConnection: close\r\n\r\n", "alice:hunter2");
  EXPECT_EQ(result.error, error::proxy_refused);
  EXPECT_THAT(result.failure,
              HasSubstr("407 Proxy Authentication Required (proxy authentication "
                        "needed or refused: check user:password in the proxy URL)"));
  EXPECT_THAT(result.failure, Not(HasSubstr("hunter2")));
  EXPECT_THAT(result.failure, Not(HasSubstr("alice")));
}

TEST(Dial, A401FromTheProxyIsExplainedAsRefusedCredentialsToo) {
  const dial_result result = dial_through_proxy_answering(
      "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n", "alice:wrong");
  EXPECT_EQ(result.error, error::proxy_refused);
  EXPECT_THAT(result.failure, EndsWith(": 401 Unauthorized (proxy authentication needed or "
                                       "refused: check user:password in the proxy URL)"));
}

TEST(Dial, A403NamesTheProxysReasonAndTheTargetItRefuses) {
  const dial_result result =
      dial_through_proxy_answering("HTTP/1.1 403 Access violation\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(result.error, error::proxy_refused);
  EXPECT_THAT(result.failure,
              HasSubstr(" refused CONNECT example.com:443: 403 Access violation (the proxy does "
                        "not allow connections to example.com:443)"));
}

TEST(Dial, AnyOtherRefusalGivesTheStatusAndReasonLineAsSent) {
  const dial_result result = dial_through_proxy_answering(
      "HTTP/1.1 503 Service Unavailable  \r\nX-Squid-Error: ERR_CONNECT_FAIL 111\r\n\r\n");
  EXPECT_EQ(result.error, error::proxy_refused);
  EXPECT_THAT(result.failure,
              EndsWith(" refused CONNECT example.com:443: 503 Service Unavailable"));
}

TEST(Dial, AnUnreachableProxyIsNamedWithTheReason) {
  asio::io_context io;
  std::string port;
  {
    tcp::acceptor closed = loopback_acceptor(io);
    port = port_of(closed);
  }
  auto [ec, socket, failure] =
      run(io, dial("example.com", "443", http_proxy{"127.0.0.1", port, "u:secret"}, dial_timeout));
  EXPECT_EQ(ec, asio::error::connection_refused) << ec.message();
  EXPECT_EQ(failure, "cannot reach the HTTP proxy 127.0.0.1:" + port + ": " +
                         error_code(asio::error::connection_refused).message());
}

TEST(Dial, AProxyThatHangsUpWithoutAnsweringIsExplained) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  auto head = asio::co_spawn(
      io, proxy_once(proxy, {.reply = "", .after_reply = proxy_script::hang_up}), asio::use_future);
  auto [ec, socket, failure] = run(
      io, dial("example.com", "443", http_proxy{"127.0.0.1", port_of(proxy), ""}, dial_timeout));
  EXPECT_EQ(ec, error::bad_proxy_reply) << ec.message();
  EXPECT_THAT(failure,
              HasSubstr(" closed the connection without answering CONNECT example.com:443"));
  finished(head);
}

TEST(Dial, ADirectFailureIsTheErrorsMessage) {
  asio::io_context io;
  std::string port;
  {
    tcp::acceptor closed = loopback_acceptor(io);
    port = port_of(closed);
  }
  auto [ec, socket, failure] = run(io, dial("127.0.0.1", port, std::nullopt, dial_timeout));
  EXPECT_EQ(failure, ec.message());
}

TEST(Dial, AReplyThatIsNotHttpIsABadProxyReply) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  auto head = asio::co_spawn(io,
                             proxy_once(proxy, {.reply = "SSH-2.0-OpenSSH\r\n\r\n",
                                                .after_reply = proxy_script::wait_for_client}),
                             asio::use_future);

  auto [ec, socket, failure] = run(
      io, dial("example.com", "443", http_proxy{"127.0.0.1", port_of(proxy), ""}, dial_timeout));

  EXPECT_EQ(ec, error::bad_proxy_reply) << ec.message();
  EXPECT_THAT(failure, HasSubstr("answered CONNECT example.com:443 with something other than "
                                 "HTTP: \"SSH-2.0-OpenSSH\""));
  finished(head);
}

TEST(Dial, AProxyClosingBeforeTheEndOfItsReplyIsABadProxyReply) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  auto head = asio::co_spawn(
      io, proxy_once(proxy, {.reply = "HTTP/1.1 200 OK\r\n", .after_reply = proxy_script::hang_up}),
      asio::use_future);

  auto [ec, socket, failure] = run(
      io, dial("example.com", "443", http_proxy{"127.0.0.1", port_of(proxy), ""}, dial_timeout));

  EXPECT_EQ(ec, error::bad_proxy_reply) << ec.message();
  EXPECT_THAT(failure, HasSubstr("closed the connection in the middle of its answer to CONNECT"));
  finished(head);
}

TEST(Dial, AReplyHeadOver16KiBIsABadProxyReply) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  // No blank line, and the proxy keeps the connection open: only the bound
  // ends the read.
  auto head = asio::co_spawn(
      io,
      proxy_once(proxy, {.reply = "HTTP/1.1 200 OK\r\nX-Padding: " + std::string(17 * 1024, 'a'),
                         .after_reply = proxy_script::wait_for_client}),
      asio::use_future);

  auto [ec, socket, failure] = run(
      io, dial("example.com", "443", http_proxy{"127.0.0.1", port_of(proxy), ""}, dial_timeout));

  EXPECT_EQ(ec, error::bad_proxy_reply) << ec.message();
  EXPECT_THAT(failure, HasSubstr("answered CONNECT example.com:443 with a head over 16 KiB"));
  finished(head);
}

TEST(Dial, AProxyThatNeverAnswersTimesOut) {
  asio::io_context io;
  tcp::acceptor proxy = loopback_acceptor(io);
  auto head = asio::co_spawn(io, proxy_once(proxy, {.answer = false}), asio::use_future);
  const auto timeout = std::chrono::milliseconds(300);

  const auto start = std::chrono::steady_clock::now();
  auto [ec, socket, failure] =
      run(io, dial("example.com", "443", http_proxy{"127.0.0.1", port_of(proxy), ""}, timeout));
  const auto elapsed = std::chrono::steady_clock::now() - start;

  EXPECT_EQ(ec, error::timed_out) << ec.message();
  EXPECT_EQ(failure, "HTTP proxy 127.0.0.1:" + port_of(proxy) +
                         " did not answer CONNECT example.com:443 within 300ms");
  EXPECT_GE(elapsed, timeout);
  EXPECT_LT(elapsed, timeout + 3s);
  // The proxy saw the request and then the client leave.
  EXPECT_THAT(finished(head), HasSubstr("CONNECT example.com:443 HTTP/1.1\r\n"));
}

TEST(Dial, AHostThatWouldSplitTheRequestLineIsRefused) {
  asio::io_context io;
  auto [ec, socket, failure] = run(io, dial("example.com:443 HTTP/1.1\r\nX-Evil: 1\r\n", "443",
                                            http_proxy{"127.0.0.1", "3128", ""}, dial_timeout));
  EXPECT_EQ(ec, asio::error::invalid_argument) << ec.message();
}

TEST(NetError, MessagesNameTheProblem) {
  EXPECT_THAT(make_error_code(error::proxy_refused).message(), HasSubstr("refused"));
  EXPECT_THAT(make_error_code(error::timed_out).message(), HasSubstr("timed out"));
  EXPECT_STREQ(make_error_code(error::bad_proxy_reply).category().name(), "porthole.net");
}

}  // namespace
}  // namespace porthole::net
