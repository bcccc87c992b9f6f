#include "inspect/capture_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

namespace porthole::inspect {
namespace {

std::size_t body_bytes(const exchange& e) {
  return e.request.body.bytes.size() + (e.response ? e.response->body.bytes.size() : 0);
}

}  // namespace

capture_writer::capture_writer(capture_store store, capture_writer_limits limits, bool paused)
    : limits_(limits), store_(std::move(store)), paused_(paused) {
  limits_.batch_entries = std::max<std::size_t>(limits_.batch_entries, 1);
  thread_ = std::thread([this] { run(); });
}

capture_writer::~capture_writer() {
  stop();
}

void capture_writer::on_stored(std::function<void(const exchange&)> callback) {
  auto shared =
      callback ? std::make_shared<const std::function<void(const exchange&)>>(std::move(callback))
               : nullptr;
  std::lock_guard lock(queue_mutex_);
  callback_ = std::move(shared);
}

bool capture_writer::submit(exchange e) {
  std::size_t bytes = body_bytes(e);
  bool wake = false;
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_) {
      return false;
    }
    if (queue_.size() >= limits_.queue_entries || bytes > limits_.queue_bytes - queued_bytes_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(e));
    queued_bytes_ += bytes;
    // The writer sleeps until a batch starts, then until it is full or due.
    if (queue_.size() == 1) {
      batch_due_ = std::chrono::steady_clock::now() + limits_.batch_delay;
      wake = true;
    } else {
      wake = queue_.size() == limits_.batch_entries;
    }
  }
  if (wake) {
    wake_.notify_one();
  }
  return true;
}

std::int64_t capture_writer::store(exchange e) {
  {
    std::lock_guard lock(store_mutex_);
    e.id = store_.add(e);
  }
  std::shared_ptr<const std::function<void(const exchange&)>> callback;
  {
    std::lock_guard lock(queue_mutex_);
    callback = callback_;
  }
  if (callback) {
    (*callback)(e);
  }
  return e.id;
}

void capture_writer::resume() {
  {
    std::lock_guard lock(queue_mutex_);
    paused_ = false;
  }
  wake_.notify_one();
}

void capture_writer::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void capture_writer::run() {
  using clock = std::chrono::steady_clock;
  std::vector<exchange> batch;
  for (;;) {
    std::shared_ptr<const std::function<void(const exchange&)>> callback;
    batch.clear();
    {
      std::unique_lock lock(queue_mutex_);
      // stop() overrides a pause and the batch delay: what was queued is
      // stored before the end.
      for (;;) {
        if (stopping_ || (!paused_ && !queue_.empty() &&
                          (queue_.size() >= limits_.batch_entries || clock::now() >= batch_due_))) {
          break;
        }
        if (paused_ || queue_.empty()) {
          wake_.wait(lock);
        } else {
          wake_.wait_until(lock, batch_due_);
        }
      }
      if (queue_.empty()) {
        return;
      }
      while (!queue_.empty() && batch.size() < limits_.batch_entries) {
        queued_bytes_ -= body_bytes(queue_.front());
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      // What is left came after this batch filled: it starts the next one,
      // rather than follow at once as a batch of a few.
      batch_due_ = clock::now() + limits_.batch_delay;
      callback = callback_;
    }
    try {
      std::lock_guard lock(store_mutex_);
      const std::vector<std::int64_t> ids = store_.add(batch);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i].id = ids[i];
      }
    } catch (const std::exception& ex) {
      failed_.fetch_add(batch.size(), std::memory_order_relaxed);
      spdlog::warn("inspect: {} exchange(s) were not captured: {}", batch.size(), ex.what());
      continue;
    }
    if (callback) {
      for (const exchange& e : batch) {
        try {
          (*callback)(e);
        } catch (const std::exception& ex) {
          spdlog::error("inspect: the on_stored callback threw: {}", ex.what());
        } catch (...) {
          spdlog::error("inspect: the on_stored callback threw");
        }
      }
    }
  }
}

std::optional<exchange> capture_writer::get(std::int64_t id) {
  std::lock_guard lock(store_mutex_);
  return store_.get(id);
}

std::vector<exchange> capture_writer::list(std::size_t limit,
                                           std::optional<std::string> tunnel_name,
                                           bool with_bodies) {
  std::lock_guard lock(store_mutex_);
  return store_.list(limit, std::move(tunnel_name), with_bodies);
}

std::size_t capture_writer::count() {
  std::lock_guard lock(store_mutex_);
  return store_.count();
}

void capture_writer::clear() {
  std::lock_guard lock(store_mutex_);
  store_.clear();
}

}  // namespace porthole::inspect
