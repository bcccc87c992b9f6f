#include "net/shards.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "net/spawn.h"

namespace porthole::net {

std::size_t default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

struct shards::worker {
  io_loop loop{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> busy{
      loop.get_executor()};
  std::thread thread;
};

shards::shards(asio::io_context& main, std::size_t n) : main_(main) {
  for (std::size_t i = 1; i < n; ++i) {
    auto w = std::make_unique<worker>();
    w->thread = std::thread([loop = &w->loop] {
      for (;;) {
        try {
          loop->run();
          return;
        } catch (...) {
          // A handler threw: logged, and the loop goes on serving the rest.
          log_escaped(std::current_exception(), "a shard's event loop");
        }
      }
    });
    loops_.push_back(std::move(w));
  }
}

shards::~shards() {
  stop();
  destroy_pending();
}

asio::any_io_executor shards::executor(std::size_t i) const {
  i %= size();
  if (i == 0) {
    return main_.get_executor();
  }
  return loops_[i - 1]->loop.get_executor();
}

std::vector<asio::any_io_executor> shards::executors() const {
  std::vector<asio::any_io_executor> all;
  for (std::size_t i = 0; i < size(); ++i) {
    all.push_back(executor(i));
  }
  return all;
}

void shards::stop() {
  for (auto& w : loops_) {
    w->busy.reset();
    w->loop.stop();
  }
  for (auto& w : loops_) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
}

void shards::destroy_pending() {
  for (auto& w : loops_) {
    w->loop.destroy_pending();
  }
}

void move_to(tcp::socket& s, const asio::any_io_executor& to, tcp protocol) {
  if (!s.is_open()) {
    s = tcp::socket(to);
    return;
  }
  // release() takes the descriptor out of this loop's epoll set; the new
  // socket puts it in the other loop's.
  error_code ec;
  const auto fd = s.release(ec);
  if (ec) {
    s = tcp::socket(to);
    return;
  }
  s = tcp::socket(to, protocol, fd);
}

void move_to(tcp::socket& s, const asio::any_io_executor& to) {
  error_code ec;
  const tcp::endpoint here = s.local_endpoint(ec);
  move_to(s, to, here.protocol());
}

void move_to(tls_stream& s, const asio::any_io_executor& to, tcp protocol) {
  move_to(s.next_layer(), to, protocol);
}

void move_to(tls_stream& s, const asio::any_io_executor& to) {
  move_to(s.next_layer(), to);
}

namespace {

// Each runs on the channel's own shard; the channel is shared so that it
// outlives an operation still running there when its user lets go of it.
asio::awaitable<std::tuple<error_code, std::size_t>> read_there(std::shared_ptr<channel> c,
                                                                asio::mutable_buffer b) {
  co_return co_await c->read_some(b);
}

asio::awaitable<void> wait_there(std::shared_ptr<channel> c) {
  co_await c->wait_readable();
}

asio::awaitable<error_code> write_there(std::shared_ptr<channel> c, asio::const_buffer b) {
  co_return co_await c->write(b);
}

}  // namespace

shard_channel::shard_channel(asio::any_io_executor home, std::shared_ptr<channel> inner)
    : home_(std::move(home)), inner_(std::move(inner)), can_half_close_(inner_->can_half_close()) {}

shard_channel::~shard_channel() {
  // The last reference goes on the channel's shard (here, or in an
  // operation still running there).
  asio::post(home_, [c = std::move(inner_), closed = closed_] {
    if (!closed) {
      c->close();
    }
  });
}

asio::awaitable<std::tuple<error_code, std::size_t>> shard_channel::read_some(
    asio::mutable_buffer b) {
  const close_if_cancelled closer = co_await close_on_cancel();
  co_return co_await asio::co_spawn(home_, read_there(inner_, b), on_other_shard());
}

asio::awaitable<void> shard_channel::wait_readable() {
  const close_if_cancelled closer = co_await close_on_cancel();
  co_await asio::co_spawn(home_, wait_there(inner_), on_other_shard());
}

asio::awaitable<error_code> shard_channel::write(asio::const_buffer b) {
  const close_if_cancelled closer = co_await close_on_cancel();
  co_return co_await asio::co_spawn(home_, write_there(inner_, b), on_other_shard());
}

asio::awaitable<shard_channel::close_if_cancelled> shard_channel::close_on_cancel() {
  asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  asio::cancellation_slot slot = state.slot();
  if (slot.is_connected()) {
    // Runs on this thread, where the cancellation comes from; the channel
    // is closed on its own.
    slot.assign([home = home_, c = inner_](asio::cancellation_type) {
      asio::post(home, [c] { c->close(); });
    });
  }
  co_return close_if_cancelled(slot);
}

void shard_channel::shutdown_send() {
  asio::post(home_, [c = inner_] { c->shutdown_send(); });
}

void shard_channel::close() {
  if (!closed_) {
    closed_ = true;
    asio::post(home_, [c = inner_] { c->close(); });
  }
}

}  // namespace porthole::net
