#pragma once
// Event loops on threads of their own: how a process uses more than one core.
//
// The model (docs/THREADS.md): each thread runs one event loop, a shard. A
// connection lives on one shard from the moment it is made to its end, and
// everything it touches on the data path (its mux session, its streams, its
// kept local connections) belongs to that shard. Work for another shard is
// posted to it; nothing on the per-byte path takes a lock.

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <memory>
#include <thread>
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

/// Moves a connection to the loop of `to`: from now on its operations run
/// there, and only there may it be used. Call it on the loop the connection
/// is on, with no operation of it pending. A TLS stream keeps its state (its
/// keys, and what it read and did not yet hand out); only its socket moves.
void move_to(tcp::socket& s, const asio::any_io_executor& to);
void move_to(tls_stream& s, const asio::any_io_executor& to);

/// A channel that lives on another shard, used from this one: each of its
/// operations runs there and the result comes back. For the rare connection
/// that cannot move to where its channel is (each operation costs two
/// hand-offs between threads). It is closed and destroyed on its shard.
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
  asio::any_io_executor home_;
  std::shared_ptr<channel> inner_;
  bool can_half_close_;
  bool closed_ = false;
};

}  // namespace porthole::net
