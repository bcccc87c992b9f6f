#include "net/relay.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <memory>

#include "net/read_size.h"

namespace porthole::net {
namespace {

using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;


struct relay_state {
  tcp::socket& near;
  channel& tunnel;
  clock::time_point deadline;
  clock::duration idle;
  bool near_eof_ends;
  relay_totals totals;

  void touch() { deadline = clock::now() + idle; }

  void close_both() {
    close_stream(near);
    tunnel.close();
  }
};

// Buffers are allocated only while data flows, so an idle connection costs
// none, and sized by what the last reads brought.
asio::awaitable<void> near_to_tunnel(relay_state& st) {
  read_size size;
  for (;;) {
    auto [wec] = co_await st.near.async_wait(tcp::socket::wait_read, use_nothrow);
    if (wec) {
      st.close_both();
      co_return;
    }
    const std::size_t want = size.next();
    auto buffer = std::make_unique_for_overwrite<char[]>(want);
    auto [ec, n] = co_await st.near.async_read_some(asio::buffer(buffer.get(), want), use_nothrow);
    size.update(n);
    if (n > 0) {
      st.touch();
      st.totals.near_to_tunnel += n;
      const error_code write_ec = co_await st.tunnel.write(asio::buffer(buffer.get(), n));
      if (write_ec) {
        st.close_both();
        co_return;
      }
    }
    if (ec == asio::error::eof) {
      if (st.tunnel.can_half_close()) {
        st.tunnel.shutdown_send();
      } else if (st.near_eof_ends) {
        st.close_both();
      }
      co_return;
    }
    if (ec) {
      st.close_both();
      co_return;
    }
  }
}

asio::awaitable<void> tunnel_to_near(relay_state& st) {
  read_size size;
  for (;;) {
    co_await st.tunnel.wait_readable();
    const std::size_t want = size.next();
    auto buffer = std::make_unique_for_overwrite<char[]>(want);
    auto [ec, n] = co_await st.tunnel.read_some(asio::buffer(buffer.get(), want));
    size.update(n);
    if (n > 0) {
      st.touch();
      auto [wec, written] = co_await asio::async_write(st.near, asio::buffer(buffer.get(), n), use_nothrow);
      st.totals.tunnel_to_near += written;
      if (wec) {
        st.close_both();
        co_return;
      }
    }
    if (ec == asio::error::eof && st.tunnel.can_half_close()) {
      error_code ignored;
      st.near.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    if (ec) {
      st.close_both();
      co_return;
    }
  }
}

asio::awaitable<void> watchdog(relay_state& st) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (st.deadline > clock::now()) {
    timer.expires_at(st.deadline);
    co_await timer.async_wait(use_nothrow);
  }
}

}  // namespace

asio::awaitable<relay_totals> relay(tcp::socket& near, channel& tunnel, std::string initial_to_near,
                                    clock::duration idle, bool near_eof_ends) {
  relay_state st{near, tunnel, {}, idle, near_eof_ends, {}};
  st.touch();
  if (!initial_to_near.empty()) {
    auto [ec, n] = co_await asio::async_write(near, asio::buffer(initial_to_near), use_nothrow);
    st.totals.tunnel_to_near += n;
    if (ec) {
      st.close_both();
      co_return st.totals;
    }
  }
  co_await ((near_to_tunnel(st) && tunnel_to_near(st)) || watchdog(st));
  st.close_both();
  co_return st.totals;
}

}  // namespace porthole::net
