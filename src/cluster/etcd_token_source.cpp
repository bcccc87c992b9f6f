#include "cluster/etcd_token_source.h"

#include <algorithm>

#include "log/event.h"
#include "net/spawn.h"

namespace porthole::cluster {

namespace asio = net::asio;
using clock = std::chrono::steady_clock;

etcd_token_source::etcd_token_source(asio::any_io_executor ex, std::shared_ptr<etcd_client> etcd,
                                     std::string prefix, std::string where, options o)
    : ex_(std::move(ex)),
      etcd_(etcd),
      tokens_(std::move(etcd), std::move(prefix)),
      where_(std::move(where)),
      opts_(o) {}

etcd_token_source::~etcd_token_source() = default;

void etcd_token_source::start(token_listing first) {
  take(std::move(first));
  watched_from_ = revision_ + 1;
  net::spawn(ex_, follow_watch(), "tokens watch");
  net::spawn(ex_, read_when_asked(), "tokens read");
}

void etcd_token_source::stop() {
  stopped_ = true;
  stopping_.notify();
  asked_.notify();
  if (watch_) {
    watch_->cancel();
  }
}

std::optional<server::token_snapshot> etcd_token_source::read_changes() {
  if (!std::exchange(fresh_, false)) {
    return std::nullopt;
  }
  return snapshot_;
}

void etcd_token_source::take(token_listing now) {
  if (now.revision < revision_) {
    return;  // older than what is known: a read that overtook another
  }
  revision_ = now.revision;
  // Last-used times are not what a node accepts: a change of them alone is
  // no change.
  for (server::token_record& r : now.snapshot.tokens) {
    r.last_used.reset();
  }
  std::erase_if(written_, [&](const auto& w) {
    return std::none_of(now.snapshot.tokens.begin(), now.snapshot.tokens.end(),
                        [&](const server::token_record& r) { return r.id == w.first; });
  });
  if (known_ && now.snapshot == snapshot_) {
    return;
  }
  snapshot_ = std::move(now.snapshot);
  known_ = true;
  fresh_ = true;
  if (on_changed) {
    on_changed();
  }
}

void etcd_token_source::ask_read() {
  read_asked_ = true;
  asked_.notify();
}

asio::awaitable<void> etcd_token_source::follow_watch() {
  auto self = shared_from_this();
  while (!stopped_) {
    // After a read, nothing before it needs watching (and what was
    // compacted away cannot be).
    watched_from_ = std::max(watched_from_, revision_ + 1);
    auto w = co_await etcd_->watch(tokens_.keys(), true, watched_from_);
    if (w) {
      watch_ = std::make_unique<etcd_watch>(std::move(w.value));
      for (;;) {
        auto batch = co_await watch_->next();
        if (!batch || batch.value.canceled) {
          if (batch && batch.value.compact_revision != 0) {
            watched_from_ = std::max(watched_from_, batch.value.compact_revision);
          }
          break;
        }
        watched_from_ = std::max(watched_from_, batch.value.revision + 1);
        const bool changed =
            std::any_of(batch.value.events.begin(), batch.value.events.end(),
                        [&](const watch_event& e) { return tokens_.affects_tokens(e.kv.key); });
        if (changed) {
          ask_read();
        }
      }
      watch_.reset();
    }
    if (stopped_) {
      co_return;
    }
    // Changes may have been missed while there was no watch: read them all.
    ask_read();
    co_await stopping_.wait_until(clock::now() + std::chrono::milliseconds(500));
  }
}

asio::awaitable<void> etcd_token_source::read_when_asked() {
  auto self = shared_from_this();
  while (!stopped_) {
    if (!read_asked_) {
      co_await asked_.wait_until(clock::now() + opts_.full_read_period);
    }
    if (stopped_) {
      co_return;
    }
    read_asked_ = false;
    auto read = co_await tokens_.list();
    if (stopped_) {
      co_return;
    }
    if (!read) {
      if (auto skipped = error_log_.admit()) {
        log::error("cannot read the tokens from etcd; keeping the ones read before",
                   {{"from", where_},
                    {"error", read.error->message},
                    {"suppressed", log::if_nonzero(*skipped)}});
      }
      unreachable_ = true;
      read_asked_ = true;
      co_await stopping_.wait_until(clock::now() + opts_.retry_delay);
      continue;
    }
    if (std::exchange(unreachable_, false)) {
      log::info("tokens read from etcd again", {{"from", where_}});
    }
    take(std::move(read.value));
  }
}

bool etcd_token_source::touch(std::int64_t id, std::int64_t when) {
  auto it = written_.find(id);
  if (it != written_.end() && when - it->second < opts_.touch_period.count()) {
    return true;  // written not long ago: the time is precise enough
  }
  written_[id] = when;
  net::spawn(ex_, write_use(id, when), "token last used");
  return true;
}

asio::awaitable<void> etcd_token_source::write_use(std::int64_t id, std::int64_t when) {
  auto self = shared_from_this();
  auto done = co_await tokens_.touch(id, when);
  if (!done) {
    // The next use tries again.
    if (auto it = written_.find(id); it != written_.end() && it->second == when) {
      written_.erase(it);
    }
    if (auto skipped = error_log_.admit()) {
      log::warn("cannot record when a token was last used",
                {{"from", where_},
                 {"error", done.error->message},
                 {"suppressed", log::if_nonzero(*skipped)}});
    }
  }
}

}  // namespace porthole::cluster
