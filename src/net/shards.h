#pragma once
// Event loops on threads of their own: how a process uses more than one core.
//
// The model (docs/THREADS.md): each thread runs one event loop, a shard. A
// connection lives on one shard from the moment it is made to its end, and
// everything it touches on the data path (its mux session, its streams, its
// kept local connections) belongs to that shard. Work for another shard is
// posted to it; nothing on the per-byte path takes a lock.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "net/channel.h"
#include "net/io_loop.h"
#include "net/stream.h"

namespace porthole::net {

/// The number of threads a process uses by default: one per core the
/// machine has (at least one).
std::size_t default_threads();

/// Shard 0 is the caller's own loop (it runs it); shards 1..n-1 are loops
/// that run on threads started here.
class shards {
 public:
  /// Starts n - 1 threads (n >= 1), each running a loop of its own until
  /// stop(). The loops wait for work while they have none.
  shards(asio::io_context& main, std::size_t n);
  /// stop(), then destroys what is still pending on the threads' loops.
  ~shards();
  shards(const shards&) = delete;
  shards& operator=(const shards&) = delete;

  std::size_t size() const { return 1 + loops_.size(); }

  /// The executor of shard i (0: the caller's loop).
  asio::any_io_executor executor(std::size_t i) const;
  /// Every shard's executor, shard 0 first.
  std::vector<asio::any_io_executor> executors() const;

  /// Stops the threads' loops and joins the threads. Coroutines still
  /// suspended on them stay pending until destroy_pending() (or the
  /// destructor): call it while what they use still exists.
  void stop();
  /// Destroys the frames still pending on the threads' loops (after stop()).
  void destroy_pending();

 private:
  struct worker;
  asio::io_context& main_;
  std::vector<std::unique_ptr<worker>> loops_;
};

/// The completion token to await work co_spawned on another shard with. The
/// awaiting coroutine's cancellation is not passed on: Boost 1.81 hands it
/// to the other executor through a pointer that the end of the work may
/// free first (a use-after-free ThreadSanitizer found). Such work ends on
/// its own, within its own bounds, or when what it uses is closed.
inline auto on_other_shard() {
  return asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable);
}

/// Moves a connection to the loop of `to`: from now on its operations run
/// there, and only there may it be used. Call it on the loop the connection
/// is on, with no operation of it pending. A TLS stream keeps its state (its
/// keys, and what it read and did not yet hand out); only its socket moves.
void move_to(tcp::socket& s, const asio::any_io_executor& to);
void move_to(tls_stream& s, const asio::any_io_executor& to);
/// The same, for a socket whose protocol (IPv4 or IPv6) the caller knows:
/// one system call less.
void move_to(tcp::socket& s, const asio::any_io_executor& to, tcp protocol);
void move_to(tls_stream& s, const asio::any_io_executor& to, tcp protocol);

/// A channel that lives on another shard, used from this one: each of its
/// operations runs there and the result comes back. For the rare connection
/// that cannot move to where its channel is (each operation costs two
/// hand-offs between threads). It is closed and destroyed on its shard.
/// Cancelling one of its operations closes it (the operation then ends
/// with an error): what a relay's time-out does next anyway.
class shard_channel final : public channel {
 public:
  shard_channel(asio::any_io_executor home, std::shared_ptr<channel> inner);
  ~shard_channel() override;
  shard_channel(const shard_channel&) = delete;
  shard_channel& operator=(const shard_channel&) = delete;

  asio::awaitable<std::tuple<error_code, std::size_t>> read_some(asio::mutable_buffer b) override;
  asio::awaitable<void> wait_readable() override;
  asio::awaitable<error_code> write(asio::const_buffer b) override;
  bool can_half_close() const override { return can_half_close_; }
  void shutdown_send() override;
  void close() override;

 private:
  /// Clears the handler close_on_cancel() put in the slot, as the
  /// operation it watched ends.
  struct close_if_cancelled {
    explicit close_if_cancelled(asio::cancellation_slot s) : slot(s) {}
    close_if_cancelled(close_if_cancelled&& o) noexcept : slot(std::exchange(o.slot, {})) {}
    close_if_cancelled& operator=(close_if_cancelled&&) = delete;
    ~close_if_cancelled() {
      if (slot.is_connected()) {
        slot.clear();
      }
    }
    asio::cancellation_slot slot;
  };
  asio::awaitable<close_if_cancelled> close_on_cancel();

  asio::any_io_executor home_;
  std::shared_ptr<channel> inner_;
  bool can_half_close_;
  bool closed_ = false;
};

}  // namespace porthole::net
