#include "server/proxy_pool.h"

#include <algorithm>

#include "net/spawn.h"

namespace porthole::server {

namespace asio = net::asio;

proxy_pool::proxy_pool(asio::any_io_executor ex, options opts, std::function<void()> request_more)
    : ex_(std::move(ex)), opts_(opts), request_more_(std::move(request_more)) {}

proxy_pool::~proxy_pool() {
  *alive_ = false;
  close();
}

void proxy_pool::start() {
  top_up();
}

std::size_t proxy_pool::add(std::unique_ptr<net::tls_stream> conn,
                            ip_connection_counts::slot counted) {
  if (!requested_.empty()) {
    requested_.pop_front();
  }
  if (closed_) {
    net::close_stream(*conn);
    return 0;
  }
  const std::uint64_t id = next_id_++;
  net::tls_stream* raw = conn.get();
  idle_.push_back({id, std::move(conn), clock::now(), std::move(counted)});
  // Keep the pool bounded: a client answering more than asked does not grow
  // it. The oldest go first: the newest are the least likely to be stale.
  std::size_t surplus = 0;
  while (static_cast<int>(idle_.size()) > opts_.target + waiting_) {
    net::close_stream(*idle_.front().stream);
    idle_.pop_front();
    ++surplus;
  }
  // The new connection is at the back: it survived unless the pool is empty.
  if (!idle_.empty()) {
    net::spawn(ex_, watch(id, raw), "proxy pool watch");
  }
  arrived_.notify();
  return surplus;
}

// A pooled connection carries nothing until StartProxy, so any readable event
// on it means the client closed it (or broke the protocol): drop it.
asio::awaitable<void> proxy_pool::watch(std::uint64_t id, net::tls_stream* stream) {
  auto alive = alive_;
  auto [ec] =
      co_await stream->next_layer().async_wait(net::tcp::socket::wait_read, net::use_nothrow);
  if (!*alive || ec == asio::error::operation_aborted) {
    co_return;
  }
  auto it =
      std::find_if(idle_.begin(), idle_.end(), [id](const idle_conn& c) { return c.id == id; });
  if (it != idle_.end()) {
    net::close_stream(*it->stream);
    idle_.erase(it);
    top_up();
  }
}

asio::awaitable<std::unique_ptr<net::tls_stream>> proxy_pool::take(clock::time_point deadline) {
  auto alive = alive_;
  while (!closed_) {
    if (!idle_.empty()) {
      auto conn = std::move(idle_.front().stream);
      idle_.pop_front();
      net::error_code ignored;
      conn->next_layer().cancel(ignored);  // stop the watch
      top_up();
      co_return conn;
    }
    ++waiting_;
    top_up();
    const bool woken = co_await arrived_.wait_until(deadline);
    if (!*alive) {
      co_return nullptr;
    }
    --waiting_;
    if (!woken && clock::now() >= deadline) {
      break;
    }
  }
  co_return nullptr;
}

void proxy_pool::close() {
  closed_ = true;
  for (auto& c : idle_) {
    net::close_stream(*c.stream);
  }
  idle_.clear();
  arrived_.notify();
}

std::size_t proxy_pool::expire_idle() {
  const auto now = clock::now();
  std::size_t dropped = 0;
  while (!idle_.empty() && now - idle_.front().since > opts_.idle_limit) {
    net::close_stream(*idle_.front().stream);
    idle_.pop_front();
    ++dropped;
  }
  forget_stale_requests();
  if (dropped > 0 || !requested_.empty()) {
    top_up();
  }
  return dropped;
}

void proxy_pool::forget_stale_requests() {
  const auto now = clock::now();
  while (!requested_.empty() && now - requested_.front() > opts_.request_timeout) {
    requested_.pop_front();
  }
}

void proxy_pool::top_up() {
  if (closed_) {
    return;
  }
  const int want = opts_.target + waiting_;
  while (static_cast<int>(idle_.size() + requested_.size()) < want) {
    requested_.push_back(clock::now());
    request_more_();
  }
}

}  // namespace porthole::server
