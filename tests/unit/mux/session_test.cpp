#include "mux/session.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "mux/frame.h"
#include "net/stream.h"
#include "net/tls.h"
#include "proto/messages.h"
#include "support/temporary_directory.h"

namespace porthole::mux {
namespace {

namespace asio = net::asio;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

// Only a guard against a hung test: every exchange ends on its own first.
constexpr auto guard_time = std::chrono::seconds(10);

constexpr std::size_t kib = 1024;

// Small enough that a few frames exhaust a window, so flow control shows.
options small_windows() {
  options o;
  o.window = 64 * kib;
  o.max_data_frame = 16 * kib;
  return o;
}

using porthole::testing::temporary_directory;

// Bytes that differ from position to position and from seed to seed, so a
// reordered, dropped or crossed chunk shows.
std::string pattern(std::size_t size, std::uint32_t seed) {
  std::string out(size, '\0');
  std::uint32_t x = seed * 2654435761u + 0x9e3779b9u;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return out;
}

// Compares without printing megabytes on a mismatch.
::testing::AssertionResult same_bytes(const std::string& got, const std::string& want) {
  if (got == want) {
    return ::testing::AssertionSuccess();
  }
  const auto n = std::min(got.size(), want.size());
  const auto at =
      std::mismatch(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(n), want.begin()).first -
      got.begin();
  return ::testing::AssertionFailure() << "got " << got.size() << " bytes, want " << want.size()
                                       << "; first difference at byte " << at;
}

proto::start_proxy start_info(int i) {
  return proto::start_proxy{"https://s" + std::to_string(i) + ".localhost",
                            "198.51.100.7:" + std::to_string(40000 + i)};
}

struct read_outcome {
  std::string data;
  net::error_code ec;
  bool done = false;
};

struct write_outcome {
  net::error_code ec;
  bool started = false;
  bool done = false;
};

// Reads until the stream fails (EOF included).
asio::awaitable<void> read_to_end(stream* s, std::shared_ptr<read_outcome> out) {
  std::array<char, 8 * kib> chunk{};
  for (;;) {
    auto [ec, n] = co_await s->read_some(asio::buffer(chunk));
    out->data.append(chunk.data(), n);
    if (ec) {
      out->ec = ec;
      break;
    }
  }
  out->done = true;
}

// Reads `size` bytes, or until the stream fails.
asio::awaitable<void> read_exactly(stream* s, std::size_t size, std::shared_ptr<read_outcome> out) {
  std::array<char, 8 * kib> chunk{};
  while (out->data.size() < size) {
    const std::size_t want = std::min(chunk.size(), size - out->data.size());
    auto [ec, n] = co_await s->read_some(asio::buffer(chunk.data(), want));
    out->data.append(chunk.data(), n);
    if (ec) {
      out->ec = ec;
      break;
    }
  }
  out->done = true;
}

asio::awaitable<void> write_then_fin(stream* s, std::string data,
                                     std::shared_ptr<write_outcome> out) {
  out->started = true;
  out->ec = co_await s->write(asio::buffer(data));
  if (!out->ec) {
    s->shutdown_send();
  }
  out->done = true;
}

asio::awaitable<void> write_only(stream* s, std::string data, std::shared_ptr<write_outcome> out) {
  out->started = true;
  out->ec = co_await s->write(asio::buffer(data));
  out->done = true;
}

// One read_some() into a buffer of `size` bytes.
asio::awaitable<void> read_once(stream* s, std::size_t size, std::shared_ptr<read_outcome> out) {
  std::string buf(size, '\0');
  auto [ec, n] = co_await s->read_some(asio::buffer(buf));
  out->data = buf.substr(0, n);
  out->ec = ec;
  out->done = true;
}

// Server and client take turns `rounds` times. Frames on one connection
// arrive in the order they were queued, so when a turn arrives its receiver
// has everything the other side queued before it.
asio::awaitable<void> ping_pong(stream* at_server, stream* at_client, int rounds,
                                std::shared_ptr<int> done) {
  for (int i = 0; i < rounds; ++i) {
    auto ping = std::make_shared<read_outcome>();
    auto pong = std::make_shared<read_outcome>();
    EXPECT_FALSE(co_await at_server->write(asio::buffer("ping", 4)));
    co_await read_exactly(at_client, 4, ping);
    EXPECT_EQ(ping->data, "ping");
    EXPECT_FALSE(co_await at_client->write(asio::buffer("pong", 4)));
    co_await read_exactly(at_server, 4, pong);
    EXPECT_EQ(pong->data, "pong");
    *done += 1;
  }
}

asio::awaitable<void> signal_readable(stream* s, std::shared_ptr<bool> readable) {
  co_await s->wait_readable();
  *readable = true;
}

// Writes `data` on `first` and closes it, then writes `marker` on `second`:
// the peer that has read the marker has received the RESET of `first`.
asio::awaitable<void> write_close_then_mark(stream* first, std::string data, stream* second,
                                            std::string marker) {
  EXPECT_FALSE(co_await first->write(asio::buffer(data)));
  first->close();
  EXPECT_FALSE(co_await second->write(asio::buffer(marker)));
}

asio::awaitable<void> accept_tls(net::tcp::acceptor* acceptor, net::tls_stream* end) {
  auto [accept_error] = co_await acceptor->async_accept(end->next_layer(), net::use_nothrow);
  if (accept_error) {
    throw boost::system::system_error(accept_error, "accept");
  }
  // As the server's listener and the agent's dialer set it.
  end->next_layer().set_option(net::tcp::no_delay(true));
  auto [handshake_error] =
      co_await end->async_handshake(ssl::stream_base::server, net::use_nothrow);
  if (handshake_error) {
    throw boost::system::system_error(handshake_error, "server handshake");
  }
}

asio::awaitable<void> connect_tls(net::tcp::endpoint server, net::tls_stream* end) {
  auto [connect_error] = co_await end->next_layer().async_connect(server, net::use_nothrow);
  if (connect_error) {
    throw boost::system::system_error(connect_error, "connect");
  }
  end->next_layer().set_option(net::tcp::no_delay(true));
  auto [handshake_error] =
      co_await end->async_handshake(ssl::stream_base::client, net::use_nothrow);
  if (handshake_error) {
    throw boost::system::system_error(handshake_error, "client handshake");
  }
}

struct raw_frame {
  frame_header header;
  std::string payload;
  net::error_code ec;
  bool done = false;
};

// A peer without a session: reads one frame as the wire carries it.
asio::awaitable<void> read_raw_frame(net::tls_stream* conn, std::shared_ptr<raw_frame> out) {
  std::string header(header_size, '\0');
  auto [ec, n] = co_await asio::async_read(*conn, asio::buffer(header), net::use_nothrow);
  out->ec = ec;
  if (!ec) {
    auto h = decode_header(header);
    if (!h) {
      out->ec = h.error();
    } else {
      out->header = *h;
      out->payload.resize(h->length);
      auto [payload_error, m] =
          co_await asio::async_read(*conn, asio::buffer(out->payload), net::use_nothrow);
      out->ec = payload_error;
    }
  }
  out->done = true;
}

asio::awaitable<void> write_raw(net::tls_stream* conn, std::string bytes,
                                std::shared_ptr<write_outcome> out) {
  out->started = true;
  auto [ec, n] = co_await asio::async_write(*conn, asio::buffer(bytes), net::use_nothrow);
  out->ec = ec;
  out->done = true;
}

// Frames as a peer without a session writes them: `data` in DATA frames of
// at most `frame` bytes.
std::string data_frames(std::uint32_t id, std::string_view data, std::size_t frame) {
  std::string frames;
  for (std::size_t at = 0; at < data.size(); at += frame) {
    append_frame(frames, frame_type::data, id, data.substr(at, frame));
  }
  return frames;
}

// One TLS connection on loopback, a mux session on each end (or a bare TLS
// client for tests that play a misbehaving peer), all on one io_context that
// the test drives with bounded waits.
class MuxSession : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = std::make_unique<temporary_directory>();
    dev_ = net::ensure_dev_certificates(state_->path() / "state", "localhost");
  }
  static void TearDownTestSuite() { state_.reset(); }

  void TearDown() override {
    // Ending both sessions fails every stream, so every coroutine the test
    // left waiting finishes before its streams and the io_context go away.
    if (server) {
      server->close();
    }
    if (client) {
      client->close();
    }
    if (raw_peer) {
      net::close_stream(*raw_peer);
    }
    EXPECT_TRUE(run_until([this] {
      return finished_ == spawned_ && (!server || server_ran_) && (!client || client_ran_);
    })) << "coroutines still waiting after both sessions closed";
    accepted_.clear();
    streams_.clear();
  }

  // A handshaken TLS pair on 127.0.0.1; the client verifies the dev
  // certificate as the agent does.
  void connect_pair(std::unique_ptr<net::tls_stream>& server_end,
                    std::unique_ptr<net::tls_stream>& client_end) {
    net::tcp::acceptor acceptor(io, net::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    server_end = std::make_unique<net::tls_stream>(net::tcp::socket(io), server_tls);
    client_end = std::make_unique<net::tls_stream>(net::tcp::socket(io), client_tls);
    net::verify_host(client_end->native_handle(), "127.0.0.1");
    spawn(accept_tls(&acceptor, server_end.get()));
    spawn(connect_tls(acceptor.local_endpoint(), client_end.get()));
    ASSERT_TRUE(finish()) << "no TLS connection within the guard time";
    ASSERT_TRUE(client_end->next_layer().is_open());
  }

  // Both ends as mux sessions, running.
  void start(options o = {}) {
    std::unique_ptr<net::tls_stream> server_end;
    std::unique_ptr<net::tls_stream> client_end;
    ASSERT_NO_FATAL_FAILURE(connect_pair(server_end, client_end));
    server_conn = server_end.get();
    server = std::make_shared<session>(std::move(server_end), session::role::server, "", o);
    client = std::make_shared<session>(std::move(client_end), session::role::client, "", o);
    client->on_open = [this](std::unique_ptr<stream> s, proto::start_proxy info) {
      accepted_.push_back({std::move(s), std::move(info)});
    };
    run_session(server, server_ran_);
    run_session(client, client_ran_);
  }

  // A server session whose peer is a bare TLS client (the end the test
  // writes frames on by hand).
  void start_with_raw_client(options o) {
    std::unique_ptr<net::tls_stream> server_end;
    ASSERT_NO_FATAL_FAILURE(connect_pair(server_end, raw_peer));
    server = std::make_shared<session>(std::move(server_end), session::role::server, "", o);
    run_session(server, server_ran_);
  }

  // A client session whose peer is a bare TLS server; `initial` is what the
  // agent read from the connection before it made the session.
  void start_with_raw_server(std::string initial) {
    std::unique_ptr<net::tls_stream> client_end;
    ASSERT_NO_FATAL_FAILURE(connect_pair(raw_peer, client_end));
    client = std::make_shared<session>(std::move(client_end), session::role::client,
                                       std::move(initial), small_windows());
    client->on_open = [this](std::unique_ptr<stream> s, proto::start_proxy info) {
      accepted_.push_back({std::move(s), std::move(info)});
    };
    run_session(client, client_ran_);
  }

  void run_session(const std::shared_ptr<session>& s, bool& ran) {
    asio::co_spawn(io, s->run(), [&ran](std::exception_ptr e) {
      ran = true;
      report(e, "session run()");
    });
  }

  static void report(std::exception_ptr e, const char* what) {
    if (!e) {
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      ADD_FAILURE() << what << " threw: " << x.what();
    } catch (...) {
      ADD_FAILURE() << what << " threw";
    }
  }

  void spawn(asio::awaitable<void> task) {
    spawned_ += 1;
    asio::co_spawn(io, std::move(task), [this](std::exception_ptr e) {
      finished_ += 1;
      report(e, "a test coroutine");
    });
  }

  // Runs the io_context until `done` or the guard time; false on time-out.
  bool run_until(const std::function<bool()>& done,
                 clock::duration limit = std::chrono::duration_cast<clock::duration>(guard_time)) {
    const auto deadline = clock::now() + limit;
    io.restart();
    while (!done()) {
      if (clock::now() >= deadline) {
        return false;
      }
      if (io.run_one_until(deadline) == 0 && io.stopped()) {
        return done();
      }
    }
    return true;
  }

  // Until every coroutine spawned with spawn() has finished.
  bool finish() {
    return run_until([this] { return finished_ == spawned_; });
  }

  // A stream the server opens; the fixture keeps it.
  stream* open(const proto::start_proxy& info, std::uint32_t window = 0) {
    streams_.push_back(server->open(info, window));
    return streams_.back().get();
  }

  // The next stream the client session was given by on_open, or nullptr.
  stream* accept(proto::start_proxy* info = nullptr) {
    if (!run_until([this] { return !accepted_.empty(); })) {
      return nullptr;
    }
    streams_.push_back(std::move(accepted_.front().s));
    if (info != nullptr) {
      *info = accepted_.front().info;
    }
    accepted_.pop_front();
    return streams_.back().get();
  }

  static std::unique_ptr<temporary_directory> state_;
  static net::dev_certificates dev_;

  // First, so that it goes last: nothing may outlive the executor it runs on.
  asio::io_context io;
  ssl::context server_tls = net::make_server_tls(dev_.server_cert, dev_.server_key);
  ssl::context client_tls = net::make_client_tls(dev_.ca_cert);
  std::shared_ptr<session> server;
  std::shared_ptr<session> client;
  net::tls_stream* server_conn = nullptr;     ///< owned by `server`
  std::unique_ptr<net::tls_stream> raw_peer;  ///< a peer without a session, if any
  bool server_ran_ = false;
  bool client_ran_ = false;

 private:
  struct opened {
    std::unique_ptr<stream> s;
    proto::start_proxy info;
  };
  std::deque<opened> accepted_;
  std::vector<std::unique_ptr<stream>> streams_;
  int spawned_ = 0;
  int finished_ = 0;
};

std::unique_ptr<temporary_directory> MuxSession::state_;
net::dev_certificates MuxSession::dev_;

TEST_F(MuxSession, AStreamTheServerOpensReachesTheClientWithItsStartProxyInfo) {
  ASSERT_NO_FATAL_FAILURE(start());
  const proto::start_proxy info{"https://demo.localhost", "203.0.113.7:51234"};

  stream* opened = open(info);
  proto::start_proxy received;
  stream* accepted = accept(&received);

  ASSERT_NE(accepted, nullptr) << "on_open was not called";
  EXPECT_EQ(received.url, "https://demo.localhost");
  EXPECT_EQ(received.client_addr, "203.0.113.7:51234");
  EXPECT_EQ(accepted->id(), opened->id());
  EXPECT_EQ(server->stream_count(), 1u);
  EXPECT_EQ(client->stream_count(), 1u);
}

TEST_F(MuxSession, BytesArriveInOrderBothWaysForAPayloadOfManyWindows) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  stream* at_server = open(start_info(1));
  stream* at_client = accept();
  ASSERT_NE(at_client, nullptr);
  // Sixteen windows each way: the writers finish only if WINDOW frames come
  // back as the readers take the bytes.
  const std::string down = pattern(1024 * kib, 1);
  const std::string up = pattern(1024 * kib, 2);
  auto sent_down = std::make_shared<write_outcome>();
  auto sent_up = std::make_shared<write_outcome>();
  auto read_down = std::make_shared<read_outcome>();
  auto read_up = std::make_shared<read_outcome>();

  spawn(write_then_fin(at_server, down, sent_down));
  spawn(write_then_fin(at_client, up, sent_up));
  spawn(read_to_end(at_client, read_down));
  spawn(read_to_end(at_server, read_up));

  ASSERT_TRUE(finish());
  EXPECT_FALSE(sent_down->ec) << sent_down->ec.message();
  EXPECT_FALSE(sent_up->ec) << sent_up->ec.message();
  EXPECT_EQ(read_down->ec, asio::error::eof) << read_down->ec.message();
  EXPECT_EQ(read_up->ec, asio::error::eof) << read_up->ec.message();
  EXPECT_TRUE(same_bytes(read_down->data, down));
  EXPECT_TRUE(same_bytes(read_up->data, up));
}

TEST_F(MuxSession, AWriterWaitsForAReaderOnceTheWindowIsFullAndResumesWhenItReads) {
  const options o = small_windows();
  ASSERT_NO_FATAL_FAILURE(start(o));
  stream* slow = open(start_info(1));
  const std::string payload = pattern(3 * o.window, 3);
  auto sent = std::make_shared<write_outcome>();
  spawn(write_then_fin(slow, payload, sent));
  // The writer queues a whole window before it waits: what another stream
  // queues from now on follows that window on the connection.
  ASSERT_TRUE(run_until([&] { return sent->started; }));
  stream* side = open(start_info(2));
  stream* slow_at_client = accept();
  stream* side_at_client = accept();
  ASSERT_NE(slow_at_client, nullptr);
  ASSERT_NE(side_at_client, nullptr);
  auto readable = std::make_shared<bool>(false);
  spawn(signal_readable(slow_at_client, readable));
  ASSERT_TRUE(run_until([&] { return *readable; }));

  // After these round trips the client has the whole first window and the
  // server has whatever the client sent about it, twice over.
  auto rounds = std::make_shared<int>(0);
  spawn(ping_pong(side, side_at_client, 2, rounds));
  ASSERT_TRUE(run_until([&] { return *rounds == 2; }));
  EXPECT_FALSE(sent->done) << "the write of three windows finished with no reader";
  // One read takes what the client holds: no more than the window.
  auto held = std::make_shared<read_outcome>();
  spawn(read_once(slow_at_client, payload.size(), held));
  ASSERT_TRUE(run_until([&] { return held->done; }));
  EXPECT_LE(held->data.size(), o.window);

  auto rest = std::make_shared<read_outcome>();
  spawn(read_to_end(slow_at_client, rest));

  ASSERT_TRUE(finish());
  EXPECT_TRUE(sent->done);
  EXPECT_FALSE(sent->ec) << sent->ec.message();
  EXPECT_EQ(rest->ec, asio::error::eof) << rest->ec.message();
  EXPECT_TRUE(same_bytes(held->data + rest->data, payload));
}

TEST_F(MuxSession, ShutdownSendGivesEofAfterTheDataWhileTheOtherDirectionStillFlows) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  stream* at_server = open(start_info(1));
  stream* at_client = accept();
  ASSERT_NE(at_client, nullptr);

  auto request = std::make_shared<read_outcome>();
  spawn(write_then_fin(at_server, "GET / HTTP/1.0\r\n\r\n", std::make_shared<write_outcome>()));
  spawn(read_to_end(at_client, request));
  ASSERT_TRUE(finish());
  EXPECT_EQ(request->data, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(request->ec, asio::error::eof) << request->ec.message();

  // After its EOF the client still answers, and a payload of several
  // windows still gets its WINDOW frames back.
  const std::string answer = pattern(200 * kib, 4);
  auto answered = std::make_shared<write_outcome>();
  auto response = std::make_shared<read_outcome>();
  spawn(write_then_fin(at_client, answer, answered));
  spawn(read_to_end(at_server, response));
  ASSERT_TRUE(finish());
  EXPECT_FALSE(answered->ec) << answered->ec.message();
  EXPECT_TRUE(same_bytes(response->data, answer));
  EXPECT_EQ(response->ec, asio::error::eof) << response->ec.message();
}

TEST_F(MuxSession, CloseBeforeBothFinsFailsThePeersPendingReadWithConnectionReset) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  stream* at_server = open(start_info(1));
  stream* at_client = accept();
  ASSERT_NE(at_client, nullptr);
  auto read = std::make_shared<read_outcome>();
  spawn(read_to_end(at_client, read));
  io.poll();
  ASSERT_FALSE(read->done);

  at_server->close();

  ASSERT_TRUE(finish());
  EXPECT_EQ(read->ec, asio::error::connection_reset) << read->ec.message();
  EXPECT_EQ(read->data, "");
  EXPECT_EQ(server->stream_count(), 0u);
  EXPECT_EQ(client->stream_count(), 0u);
}

TEST_F(MuxSession, DataReceivedBeforeAResetIsReadBeforeTheReset) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  stream* closing = open(start_info(1));
  stream* marker = open(start_info(2));
  stream* closing_at_client = accept();
  stream* marker_at_client = accept();
  ASSERT_NE(closing_at_client, nullptr);
  ASSERT_NE(marker_at_client, nullptr);

  spawn(write_close_then_mark(closing, "last words", marker, "marker"));
  auto marked = std::make_shared<read_outcome>();
  spawn(read_exactly(marker_at_client, 6, marked));
  ASSERT_TRUE(finish());
  ASSERT_EQ(marked->data, "marker");
  // The RESET came before the marker: the client has dropped the stream.
  EXPECT_EQ(client->stream_count(), 1u);

  auto read = std::make_shared<read_outcome>();
  spawn(read_to_end(closing_at_client, read));
  ASSERT_TRUE(finish());
  EXPECT_EQ(read->data, "last words");
  EXPECT_EQ(read->ec, asio::error::connection_reset) << read->ec.message();
}

TEST_F(MuxSession, ManyStreamsAtOnceEachDeliverTheirOwnBytes) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  constexpr int count = 200;
  constexpr std::size_t size = 32 * kib;
  std::vector<stream*> at_server;
  for (int i = 0; i < count; ++i) {
    at_server.push_back(open(start_info(i)));
  }
  std::vector<stream*> at_client;
  for (int i = 0; i < count; ++i) {
    proto::start_proxy info;
    at_client.push_back(accept(&info));
    ASSERT_NE(at_client.back(), nullptr) << "stream " << i << " did not reach the client";
    ASSERT_EQ(info, start_info(i)) << "streams reached the client out of order";
  }

  std::vector<std::shared_ptr<read_outcome>> down(count);
  std::vector<std::shared_ptr<read_outcome>> up(count);
  for (int i = 0; i < count; ++i) {
    down[i] = std::make_shared<read_outcome>();
    up[i] = std::make_shared<read_outcome>();
    spawn(write_then_fin(at_server[i], pattern(size, 2 * i), std::make_shared<write_outcome>()));
    spawn(
        write_then_fin(at_client[i], pattern(size, 2 * i + 1), std::make_shared<write_outcome>()));
    spawn(read_to_end(at_client[i], down[i]));
    spawn(read_to_end(at_server[i], up[i]));
  }

  ASSERT_TRUE(finish());
  for (int i = 0; i < count; ++i) {
    EXPECT_TRUE(same_bytes(down[i]->data, pattern(size, 2 * i)))
        << "server to client, stream " << i;
    EXPECT_TRUE(same_bytes(up[i]->data, pattern(size, 2 * i + 1)))
        << "client to server, stream " << i;
    EXPECT_EQ(down[i]->ec, asio::error::eof) << i;
    EXPECT_EQ(up[i]->ec, asio::error::eof) << i;
  }
}

TEST_F(MuxSession, ClosingTheSessionFailsEveryStreamOnThePeerAndEndsBothRuns) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  std::vector<std::shared_ptr<read_outcome>> reads;
  std::vector<stream*> at_client;
  for (int i = 0; i < 3; ++i) {
    open(start_info(i));
    at_client.push_back(accept());
    ASSERT_NE(at_client.back(), nullptr);
    reads.push_back(std::make_shared<read_outcome>());
    spawn(read_to_end(at_client.back(), reads.back()));
  }
  // One client writer waits for a window that will never come.
  auto blocked = std::make_shared<write_outcome>();
  spawn(write_only(at_client[0], pattern(3 * small_windows().window, 5), blocked));
  io.poll();
  ASSERT_FALSE(blocked->done);

  server->close();

  ASSERT_TRUE(run_until([&] { return client_ran_ && server_ran_; }))
      << "run() did not return after the peer closed";
  ASSERT_TRUE(finish());
  EXPECT_TRUE(client->closed());
  for (const auto& read : reads) {
    EXPECT_EQ(read->ec, asio::error::connection_reset) << read->ec.message();
  }
  EXPECT_EQ(blocked->ec, asio::error::connection_reset) << blocked->ec.message();
  EXPECT_EQ(client->stream_count(), 0u);
}

TEST_F(MuxSession, ALostConnectionFailsEveryStreamOnBothSides) {
  ASSERT_NO_FATAL_FAILURE(start(small_windows()));
  stream* at_server = open(start_info(1));
  stream* at_client = accept();
  ASSERT_NE(at_client, nullptr);
  auto server_read = std::make_shared<read_outcome>();
  auto client_read = std::make_shared<read_outcome>();
  spawn(read_to_end(at_server, server_read));
  spawn(read_to_end(at_client, client_read));
  io.poll();

  // The socket goes away under the server session, as when the network drops.
  net::close_stream(*server_conn);

  ASSERT_TRUE(run_until([&] { return client_ran_ && server_ran_; }))
      << "run() did not return after the connection ended";
  ASSERT_TRUE(finish());
  EXPECT_EQ(server_read->ec, asio::error::connection_reset) << server_read->ec.message();
  EXPECT_EQ(client_read->ec, asio::error::connection_reset) << client_read->ec.message();
  EXPECT_TRUE(server->closed());
  EXPECT_TRUE(client->closed());
}

TEST_F(MuxSession, APeerThatSendsDataBeyondTheWindowHasItsConnectionClosed) {
  const options o = small_windows();
  ASSERT_NO_FATAL_FAILURE(start_with_raw_client(o));
  const proto::start_proxy info = start_info(1);
  stream* at_server = open(info);
  auto open_frame = std::make_shared<raw_frame>();
  spawn(read_raw_frame(raw_peer.get(), open_frame));
  ASSERT_TRUE(finish());
  ASSERT_FALSE(open_frame->ec) << open_frame->ec.message();
  ASSERT_EQ(open_frame->header.type, frame_type::open);
  ASSERT_EQ(open_frame->header.stream, at_server->id());
  EXPECT_EQ(proto::decode(open_frame->payload).value(), proto::message(info));

  // One byte more than the window, and no WINDOW came back.
  const std::string sent = pattern(o.window + 1, 6);
  std::string frames = data_frames(at_server->id(), sent, o.max_data_frame);
  spawn(write_raw(raw_peer.get(), frames, std::make_shared<write_outcome>()));

  ASSERT_TRUE(run_until([&] { return server_ran_; })) << "the server kept the connection";
  EXPECT_TRUE(server->closed());
  auto read = std::make_shared<read_outcome>();
  spawn(read_to_end(at_server, read));
  auto after = std::make_shared<raw_frame>();
  spawn(read_raw_frame(raw_peer.get(), after));
  ASSERT_TRUE(finish());
  EXPECT_EQ(read->ec, asio::error::connection_reset) << read->ec.message();
  EXPECT_LE(read->data.size(), o.window);
  EXPECT_TRUE(same_bytes(read->data, sent.substr(0, read->data.size())));
  EXPECT_TRUE(after->ec) << "the raw peer's connection is still open";
}

TEST_F(MuxSession, AStreamOpenedWithAWindowOfItsOwnHoldsThePeerToIt) {
  options o = small_windows();
  o.stream_windows = true;  // the client negotiated it
  ASSERT_NO_FATAL_FAILURE(start_with_raw_client(o));
  constexpr std::uint32_t own = 4 * 1024;
  ASSERT_LT(own, o.window);
  stream* at_server = open(start_info(1), own);
  auto open_frame = std::make_shared<raw_frame>();
  spawn(read_raw_frame(raw_peer.get(), open_frame));
  ASSERT_TRUE(finish());
  ASSERT_EQ(open_frame->header.type, frame_type::open);
  EXPECT_EQ(open_frame->header.flags, 12);  // 2^12 bytes

  // The stream's own window is the bound, not the connection's.
  const std::string sent = pattern(own + 1, 8);
  std::string frames = data_frames(at_server->id(), sent, o.max_data_frame);
  spawn(write_raw(raw_peer.get(), frames, std::make_shared<write_outcome>()));
  ASSERT_TRUE(run_until([&] { return server_ran_; })) << "the server kept the connection";
  EXPECT_TRUE(server->closed());
}

TEST_F(MuxSession, WithoutTheFeatureAStreamGetsTheConnectionsWindow) {
  const options o = small_windows();
  ASSERT_NO_FATAL_FAILURE(start_with_raw_client(o));
  open(start_info(1), 4 * 1024);
  auto open_frame = std::make_shared<raw_frame>();
  spawn(read_raw_frame(raw_peer.get(), open_frame));
  ASSERT_TRUE(finish());
  EXPECT_EQ(open_frame->header.flags, 0);  // an older client would refuse the flags
}

TEST_F(MuxSession, APeerThatSendsExactlyTheWindowIsServed) {
  const options o = small_windows();
  ASSERT_NO_FATAL_FAILURE(start_with_raw_client(o));
  stream* at_server = open(start_info(1));
  stream* side = open(start_info(2));
  auto opens = std::make_shared<raw_frame>();
  spawn(read_raw_frame(raw_peer.get(), opens));
  ASSERT_TRUE(finish());
  spawn(read_raw_frame(raw_peer.get(), opens));
  ASSERT_TRUE(finish());
  ASSERT_EQ(opens->header.type, frame_type::open);

  // The whole window before anything is read, then a frame on the other
  // stream: once that arrives, the server has taken the window.
  const std::string sent = pattern(o.window, 7);
  std::string frames = data_frames(at_server->id(), sent, o.max_data_frame);
  append_frame(frames, frame_type::fin, at_server->id(), "");
  append_frame(frames, frame_type::data, side->id(), "marker");
  spawn(write_raw(raw_peer.get(), frames, std::make_shared<write_outcome>()));
  auto marked = std::make_shared<read_outcome>();
  spawn(read_exactly(side, 6, marked));
  ASSERT_TRUE(finish());
  EXPECT_EQ(marked->data, "marker");
  EXPECT_FALSE(server->closed());

  auto read = std::make_shared<read_outcome>();
  spawn(read_to_end(at_server, read));
  ASSERT_TRUE(finish());
  EXPECT_EQ(read->ec, asio::error::eof) << read->ec.message();
  EXPECT_TRUE(same_bytes(read->data, sent));
  EXPECT_FALSE(server_ran_);
}

TEST_F(MuxSession, APeerThatSendsDataAfterItsFinHasItsConnectionClosed) {
  ASSERT_NO_FATAL_FAILURE(start_with_raw_client(small_windows()));
  stream* at_server = open(start_info(1));
  auto open_frame = std::make_shared<raw_frame>();
  spawn(read_raw_frame(raw_peer.get(), open_frame));
  ASSERT_TRUE(finish());
  ASSERT_EQ(open_frame->header.type, frame_type::open);

  std::string frames = data_frames(at_server->id(), "request", 16 * kib);
  append_frame(frames, frame_type::fin, at_server->id(), "");
  frames += data_frames(at_server->id(), "more", 16 * kib);
  spawn(write_raw(raw_peer.get(), frames, std::make_shared<write_outcome>()));

  ASSERT_TRUE(run_until([&] { return server_ran_; })) << "the server kept the connection";
  // What came before the FIN is delivered; the stream's answer has nowhere
  // to go.
  auto read = std::make_shared<read_outcome>();
  auto answer = std::make_shared<write_outcome>();
  spawn(read_to_end(at_server, read));
  spawn(write_only(at_server, "answer", answer));
  ASSERT_TRUE(finish());
  EXPECT_EQ(read->data, "request");
  EXPECT_TRUE(read->ec);
  EXPECT_EQ(answer->ec, asio::error::connection_reset) << answer->ec.message();
}

TEST_F(MuxSession, AClientThatOpensAStreamHasItsConnectionClosed) {
  ASSERT_NO_FATAL_FAILURE(start_with_raw_client(small_windows()));
  std::string frames;
  append_frame(frames, frame_type::open, 2, proto::encode(start_info(1)));
  spawn(write_raw(raw_peer.get(), frames, std::make_shared<write_outcome>()));

  ASSERT_TRUE(run_until([&] { return server_ran_; })) << "the server kept the connection";
  EXPECT_EQ(server->stream_count(), 0u);
}

// The agent reads RegMux's answer and may read frames with it; the session
// must handle those first, even a frame cut in two between them and the
// connection.
TEST_F(MuxSession, FramesReadBeforeTheSessionStartedAreHandledFirst) {
  std::string frames;
  append_frame(frames, frame_type::open, 7, proto::encode(start_info(7)));
  append_frame(frames, frame_type::data, 7, "hello, ");
  append_frame(frames, frame_type::data, 7, "world");
  append_frame(frames, frame_type::fin, 7, "");
  const std::size_t cut = frames.size() - header_size - 5 - header_size - 3;
  ASSERT_NO_FATAL_FAILURE(start_with_raw_server(frames.substr(0, cut)));
  spawn(write_raw(raw_peer.get(), frames.substr(cut), std::make_shared<write_outcome>()));

  proto::start_proxy info;
  stream* at_client = accept(&info);
  ASSERT_NE(at_client, nullptr);
  EXPECT_EQ(info, start_info(7));
  EXPECT_EQ(at_client->id(), 7u);
  auto read = std::make_shared<read_outcome>();
  spawn(read_to_end(at_client, read));
  ASSERT_TRUE(finish());
  EXPECT_EQ(read->data, "hello, world");
  EXPECT_EQ(read->ec, asio::error::eof) << read->ec.message();
}

// As a public connection's handler does: the coroutine owns its stream and
// waits in a read.
asio::awaitable<void> own_and_read(std::unique_ptr<stream> s, std::shared_ptr<bool> waiting) {
  std::array<char, 16> buf{};
  *waiting = true;
  co_await s->read_some(asio::buffer(buf));
}

// Both main()s stop the io_context on SIGINT/SIGTERM and let it go with
// coroutines still waiting in it. Destroying a waiting coroutine destroys the
// timer net::event::wait_until() registered, but the event keeps the pointer;
// then the frame's stream is destroyed, stream::close() notifies its events
// and cancels the freed timer (heap-use-after-free, seen with
// -fsanitize=address). Disabled until net::event forgets a waiter whose
// frame is destroyed.
TEST_F(MuxSession, AnIoContextThatGoesWithAStreamStillWaitingFreesItSafely) {
  auto own_io = std::make_unique<asio::io_context>();
  auto server_end = std::make_unique<net::tls_stream>(net::tcp::socket(*own_io), server_tls);
  auto client_end = std::make_unique<net::tls_stream>(net::tcp::socket(*own_io), client_tls);
  net::verify_host(client_end->native_handle(), "127.0.0.1");
  {
    net::tcp::acceptor acceptor(*own_io,
                                net::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(*own_io, accept_tls(&acceptor, server_end.get()), asio::detached);
    asio::co_spawn(*own_io, connect_tls(acceptor.local_endpoint(), client_end.get()),
                   asio::detached);
    own_io->run_for(guard_time);
  }
  ASSERT_TRUE(server_end->next_layer().is_open() && client_end->next_layer().is_open());
  own_io->restart();
  auto own_server = std::make_shared<session>(std::move(server_end), session::role::server);
  auto own_client = std::make_shared<session>(std::move(client_end), session::role::client);
  asio::co_spawn(*own_io, own_server->run(), asio::detached);
  asio::co_spawn(*own_io, own_client->run(), asio::detached);
  auto waiting = std::make_shared<bool>(false);
  asio::co_spawn(*own_io, own_and_read(own_server->open(start_info(1)), waiting), asio::detached);
  const auto deadline = clock::now() + guard_time;
  while (!*waiting && own_io->run_one_until(deadline) > 0) {
  }
  ASSERT_TRUE(*waiting);
  own_server.reset();
  own_client.reset();

  own_io->stop();
  own_io.reset();
}

}  // namespace
}  // namespace porthole::mux
