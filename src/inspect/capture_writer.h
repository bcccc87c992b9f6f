#pragma once
// The threaded front of the capture store: the network thread hands over an
// exchange and moves on; a writer thread of its own stores it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "inspect/capture_store.h"
#include "inspect/exchange.h"

namespace porthole::inspect {

/// The bounds of the writer's queue and its batching. An exchange that does
/// not fit is dropped and counted, never waited for: a slow disk
/// must not slow the tunnel. The writer takes up to `batch_entries` queued
/// exchanges at a time and stores them in one transaction, so at most that
/// many more are held while being written.
struct capture_writer_limits {
  /// Exchanges waiting to be stored.
  std::size_t queue_entries = 4096;
  /// Body bytes (request and response) waiting to be stored.
  std::size_t queue_bytes = 64 * 1024 * 1024;
  /// Exchanges stored per transaction, at most.
  std::size_t batch_entries = 128;
  /// How long the first exchange of a batch waits for others to join it: a
  /// transaction per exchange would cost more than the capture itself. This
  /// is also the longest an exchange waits before the inspector can see it.
  std::chrono::milliseconds batch_delay{20};
};

/// Owns a capture_store and the thread that writes to it. All members are
/// thread-safe.
///
/// Reads (get, list, count, clear) run on the calling thread under the lock
/// that also guards each insert, so a read waits for at most one batch of inserts, never
/// for the queue; it does not see exchanges still queued. This works for
/// ":memory:" too, where a second connection would see another database.
class capture_writer {
 public:
  /// Starts the writer thread, which owns `store` from now on. With `paused`
  /// the thread stores nothing until resume() or stop(); the queue fills up
  /// meanwhile (for start-up ordering, and for tests of a full queue).
  explicit capture_writer(capture_store store, capture_writer_limits limits = {},
                          bool paused = false);
  /// Calls stop().
  ~capture_writer();
  capture_writer(const capture_writer&) = delete;
  capture_writer& operator=(const capture_writer&) = delete;

  /// Sets the function called on the writer thread after each exchange is
  /// stored, with its id set; it should post the work elsewhere and return.
  /// An exception it throws is logged and ignored. Replaces any earlier one.
  void on_stored(std::function<void(const exchange&)> callback);

  /// Queues `e` to be stored. Never waits for the store: returns false, and
  /// counts a drop, when the queue is full; returns false without counting
  /// after stop().
  bool submit(exchange e);

  /// Stores `e` now, on the calling thread (waiting for at most one batch of
  /// the writer's), and returns its id; the on_stored callback runs too, on
  /// this thread. For the few exchanges a user makes by hand (replays), whose
  /// id the caller must answer with. Throws what capture_store::add throws.
  std::int64_t store(exchange e);

  /// Lets a writer started paused store what is queued.
  void resume();

  /// Stores everything queued, then ends the writer thread. Later calls do nothing.
  void stop();

  /// Exchanges dropped because the queue was full.
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  /// Exchanges the store failed to write (logged as each happened).
  std::uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }

  /// See capture_store::get.
  std::optional<exchange> get(std::int64_t id);
  /// See capture_store::list.
  std::vector<exchange> list(std::size_t limit,
                             std::optional<std::string> tunnel_name = std::nullopt,
                             bool with_bodies = true);
  /// See capture_store::count.
  std::size_t count();
  /// See capture_store::clear. Exchanges still queued are stored afterwards.
  void clear();

 private:
  void run();

  capture_writer_limits limits_;

  std::mutex store_mutex_;  // guards store_
  capture_store store_;

  std::mutex queue_mutex_;  // guards everything below up to the atomics
  std::condition_variable wake_;
  std::deque<exchange> queue_;
  std::size_t queued_bytes_ = 0;
  /// When the oldest queued exchange stops waiting for others to join its batch.
  std::chrono::steady_clock::time_point batch_due_;
  bool paused_;
  bool stopping_ = false;
  std::shared_ptr<const std::function<void(const exchange&)>> callback_;

  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> failed_{0};

  std::mutex stop_mutex_;  // serializes stop() callers around the join
  std::thread thread_;     // last: started once everything above exists
};

}  // namespace porthole::inspect
