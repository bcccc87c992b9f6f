#pragma once
// Copies bytes both ways between a connection's near side (a public or local
// TCP socket) and the tunnel side (a TLS proxy connection), the way ngrok 1.x
// joins them, but without losing the answer to a client that half-closed:
//  - near side EOF: with near_half_close, stop reading it and keep copying
//    the tunnel's bytes to it (a public client that half-closed still gets
//    its answer); without, close both;
//  - tunnel side EOF or any error: flush, then close both.
// An idle time-out ends a relay in which nothing moved for that long.

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "net/stream.h"

namespace porthole::net {

/// Bytes moved by one relay, for logs.
struct relay_totals {
  std::uint64_t near_to_tunnel = 0;
  std::uint64_t tunnel_to_near = 0;
};

namespace detail {

inline constexpr std::size_t relay_buffer_size = 32 * 1024;

struct relay_state {
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::duration idle;
  relay_totals totals;

  void touch() { deadline = std::chrono::steady_clock::now() + idle; }
};

template <class From, class To>
asio::awaitable<error_code> pump(From& from, To& to, std::uint64_t& counter, relay_state& state) {
  auto buffer = std::make_unique<char[]>(relay_buffer_size);
  for (;;) {
    auto [rec, n] =
        co_await from.async_read_some(asio::buffer(buffer.get(), relay_buffer_size), use_nothrow);
    if (n > 0) {
      state.touch();
      auto [wec, written] =
          co_await asio::async_write(to, asio::buffer(buffer.get(), n), use_nothrow);
      counter += written;
      if (wec) {
        co_return wec;
      }
    }
    if (rec) {
      co_return rec;
    }
  }
}

inline asio::awaitable<void> watchdog(relay_state& state);

// The near side's sender may half-close when done: then only the watchdog
// still bounds the relay while the answer flows back.
template <class Near, class Tunnel>
asio::awaitable<void> near_pump(Near& near, Tunnel& tunnel, relay_state& state, bool half_close) {
  const error_code ec = co_await pump(near, tunnel, state.totals.near_to_tunnel, state);
  if (half_close && ec == asio::error::eof) {
    co_await watchdog(state);
  }
}

inline asio::awaitable<void> watchdog(relay_state& state) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (auto now = std::chrono::steady_clock::now(); state.deadline > now;
       now = std::chrono::steady_clock::now()) {
    timer.expires_at(state.deadline);
    co_await timer.async_wait(use_nothrow);
  }
}

}  // namespace detail

/// Relays until the tunnel side ends, an error, or `idle` without traffic.
/// `initial_to_near` are tunnel bytes read before the relay started.
template <class Near, class Tunnel>
asio::awaitable<relay_totals> relay(Near& near, Tunnel& tunnel, std::string initial_to_near,
                                    std::chrono::steady_clock::duration idle,
                                    bool near_half_close) {
  using namespace asio::experimental::awaitable_operators;
  detail::relay_state state{{}, idle, {}};
  state.touch();
  if (!initial_to_near.empty()) {
    auto [ec, n] = co_await asio::async_write(near, asio::buffer(initial_to_near), use_nothrow);
    state.totals.tunnel_to_near += n;
    if (ec) {
      close_stream(near);
      close_stream(tunnel);
      co_return state.totals;
    }
  }
  co_await (detail::near_pump(near, tunnel, state, near_half_close) ||
            detail::pump(tunnel, near, state.totals.tunnel_to_near, state) ||
            detail::watchdog(state));
  close_stream(near);
  close_stream(tunnel);
  co_return state.totals;
}

}  // namespace porthole::net
