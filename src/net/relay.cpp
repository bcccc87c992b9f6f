#include "net/relay.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <memory>

#include "net/event.h"
#include "net/read_size.h"
#include "net/spawn.h"

namespace porthole::net {
namespace {

using clock = std::chrono::steady_clock;

struct relay_state {
  relay_state(channel& n, channel& t, const asio::any_io_executor& ex, clock::duration i,
              bool eof_ends, relay_observer* o)
      : near(n), tunnel(t), idle(i), near_eof_ends(eof_ends), observer(o), timer(ex) {}

  channel& near;
  channel& tunnel;
  clock::time_point deadline;
  clock::duration idle;
  bool near_eof_ends;
  relay_observer* observer;
  relay_totals totals;
  asio::steady_timer timer;
  event joined;
  bool other_done = false;
  bool done = false;

  void touch() { deadline = clock::now() + idle; }

  void close_both() {
    near.close();
    tunnel.close();
  }
};

// Buffers are allocated only while data flows, so an idle connection costs
// none, and sized by what the last reads brought.
asio::awaitable<void> near_to_tunnel(relay_state& st) {
  read_size size;
  for (;;) {
    co_await st.near.wait_readable();
    const std::size_t want = size.next();
    auto buffer = std::make_unique_for_overwrite<char[]>(want);
    auto [ec, n] = co_await st.near.read_some(asio::buffer(buffer.get(), want));
    size.update(n);
    if (n > 0) {
      st.touch();
      st.totals.near_to_tunnel += n;
      if (st.observer != nullptr) {
        st.observer->to_tunnel({buffer.get(), n});
      }
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
      if (st.observer != nullptr) {
        st.observer->to_near({buffer.get(), n});
      }
      const error_code wec = co_await st.near.write(asio::buffer(buffer.get(), n));
      if (!wec) {
        st.totals.tunnel_to_near += n;
      }
      if (wec) {
        st.close_both();
        co_return;
      }
    }
    if (ec == asio::error::eof && st.tunnel.can_half_close() && st.near.can_half_close()) {
      st.near.shutdown_send();
      co_return;
    }
    if (ec) {
      st.close_both();
      co_return;
    }
  }
}

// The idle time-out: a plain timer re-armed while traffic moves. It owns a
// share of the state, so it may fire after relay() returned: then it is done.
void arm_watchdog(const std::shared_ptr<relay_state>& st) {
  st->timer.expires_at(st->deadline);
  st->timer.async_wait([st](const error_code& ec) {
    if (ec || st->done) {
      return;
    }
    if (clock::now() >= st->deadline) {
      st->close_both();
      return;
    }
    arm_watchdog(st);
  });
}

}  // namespace

// One direction runs in a coroutine of its own, the other in this one: two
// coroutines and a timer per relayed connection, nothing more.
asio::awaitable<relay_totals> relay(tcp::socket& near, channel& tunnel, std::string initial_to_near,
                                    clock::duration idle, bool near_eof_ends,
                                    relay_observer* observer) {
  socket_channel near_channel(near);
  co_return co_await relay(near_channel, tunnel, std::move(initial_to_near), idle, near_eof_ends,
                           observer);
}

asio::awaitable<relay_totals> relay(channel& near, channel& tunnel, std::string initial_to_near,
                                    clock::duration idle, bool near_eof_ends,
                                    relay_observer* observer) {
  const auto executor = co_await asio::this_coro::executor;
  auto st = std::make_shared<relay_state>(near, tunnel, executor, idle, near_eof_ends, observer);
  st->touch();
  if (!initial_to_near.empty()) {
    if (observer != nullptr) {
      observer->to_near(initial_to_near);
    }
    const error_code ec = co_await near.write(asio::buffer(initial_to_near));
    if (!ec) {
      st->totals.tunnel_to_near += initial_to_near.size();
    }
    if (ec) {
      st->close_both();
      co_return st->totals;
    }
  }
  arm_watchdog(st);
  asio::co_spawn(executor, tunnel_to_near(*st), [st](std::exception_ptr e) {
    if (e) {
      log_escaped(e, "relay");
      if (!st->done) {
        st->close_both();
      }
    }
    st->other_done = true;
    st->joined.notify();
  });
  co_await near_to_tunnel(*st);
  while (!st->other_done) {
    co_await st->joined.wait_until(clock::time_point::max());
  }
  st->close_both();
  // From here the caller may destroy near and tunnel: the timer must not touch them.
  st->done = true;
  st->timer.cancel();
  co_return st->totals;
}

}  // namespace porthole::net
