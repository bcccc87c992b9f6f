#include "client/local_http.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <optional>
#include <string_view>

#include "http/forwarding.h"
#include "http/message_parser.h"
#include "net/dialer.h"
#include "net/event.h"
#include "net/read_size.h"
#include "net/spawn.h"

namespace porthole::client {
namespace {

namespace asio = net::asio;
using clock = std::chrono::steady_clock;
using net::error_code;

/// Methods a client may send twice with the same effect (RFC 9110, 9.2.2).
bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

/// One read's worth of bytes, allocated only once the peer has sent some, so
/// that a connection waiting for its next request holds no buffer.
struct scratch {
  std::unique_ptr<char[]> bytes;
  std::size_t size = 0;
};

asio::awaitable<std::tuple<error_code, scratch>> read_from(net::channel& c, net::read_size& size) {
  co_await c.wait_readable();
  scratch s{std::make_unique_for_overwrite<char[]>(size.next()), 0};
  auto [ec, n] = co_await c.read_some(asio::buffer(s.bytes.get(), size.next()));
  size.update(n);
  s.size = n;
  co_return std::make_tuple(ec, std::move(s));
}

/// The bytes to parse: `held` with the new ones after it, or the new ones
/// where they lie when nothing is held (no copy).
std::string_view with_held(std::string& held, const scratch& s) {
  if (held.empty()) {
    return {s.bytes.get(), s.size};
  }
  held.append(s.bytes.get(), s.size);
  return held;
}

/// Keeps the unparsed end `rest` of `input` (which is `held` itself or lies
/// elsewhere) as the bytes held for the next read.
void hold(std::string& held, std::string_view input, std::size_t used) {
  if (used == input.size()) {
    held = std::string();
  } else if (input.data() == held.data()) {
    held.erase(0, used);
  } else {
    held.assign(input.substr(used));
  }
}

/// What one request-response exchange left behind.
enum class after_exchange {
  next_request,  ///< the public connection may carry another request
  end,           ///< the public connection ends (asked to, or a failure)
  raw,           ///< bytes are relayed as they are from now on (a switch, or not HTTP)
};

class forwarder : public std::enable_shared_from_this<forwarder> {
 public:
  forwarder(net::channel& tunnel, std::shared_ptr<local_pool> pool, local_http_target target,
            http_observer* observer, const asio::any_io_executor& ex, std::string initial)
      : tunnel_(tunnel),
        pool_(std::move(pool)),
        target_(std::move(target)),
        observer_(observer),
        addr_(target_.host + ":" + target_.port),
        held_(std::move(initial)),
        timer_(ex) {}

  asio::awaitable<local_http_totals> run();

 private:
  enum class head_read { request, ended, not_http };
  asio::awaitable<head_read> read_request_head();
  asio::awaitable<after_exchange> exchange();
  /// A connection for the current request: a kept one if `allow_pooled`.
  asio::awaitable<bool> connect(bool allow_pooled);
  asio::awaitable<error_code> send_to_local(std::string_view bytes, bool observed);
  /// The current request as far as it is framed (held_[0, ready_)), its head
  /// as kept_head_ says.
  asio::awaitable<error_code> send_request_start(bool observed);
  asio::awaitable<void> send_request_body();
  asio::awaitable<void> relay_rest();
  void frame_request_body();
  /// Closes the local connection's socket; an operation pending on it ends.
  void shut_local();
  /// Lets the local connection go: only when no operation is pending on it.
  void drop_local();
  void touch() { deadline_ = clock::now() + target_.idle; }
  /// After the last answer: waits (at most target_.linger, dropping what
  /// comes) for the public side to end the tunnel.
  asio::awaitable<void> linger();
  void arm_watchdog();

  net::channel& tunnel_;
  std::shared_ptr<local_pool> pool_;
  local_http_target target_;
  http_observer* observer_;
  std::string addr_;
  local_http_totals totals_;

  http::request_parser requests_{http::forwarded_limits};
  http::response_parser responses_;
  /// Tunnel bytes read and not yet sent on; the first `ready_` are framed
  /// (the current request's head and body as far as parsed).
  std::string held_;
  std::size_t ready_ = 0;
  std::size_t head_len_ = 0;  ///< the current request's head: held_[0, head_len_)
  /// The head sent instead, when the client's Connection: close is taken
  /// out so that the service keeps its connection; empty: sent as it came.
  std::string kept_head_;
  bool request_done_ = false;    ///< the current request's last byte is framed
  bool request_failed_ = false;  ///< its body could not be read or sent in full
  net::read_size tunnel_reads_;

  std::optional<net::tcp::socket> local_;
  std::optional<net::socket_channel> local_channel_;
  bool local_reused_ = false;

  asio::steady_timer timer_;
  clock::time_point deadline_;
  bool done_ = false;
  bool body_sender_running_ = false;
  net::event body_sender_done_;
};

asio::awaitable<local_http_totals> forwarder::run() {
  touch();
  arm_watchdog();
  for (;;) {
    const head_read got = co_await read_request_head();
    if (got == head_read::ended) {
      break;
    }
    if (got == head_read::not_http) {
      co_await relay_rest();
      break;
    }
    const http::request_head& h = requests_.head();
    if (h.upgrade || h.method == "CONNECT" || h.version != 11) {
      // These keep a connection of their own, relayed byte for byte.
      co_await relay_rest();
      break;
    }
    const after_exchange next = co_await exchange();
    if (next == after_exchange::raw) {
      co_await relay_rest();
      break;
    }
    if (next == after_exchange::end) {
      break;
    }
  }
  drop_local();
  if (!done_ && tunnel_.can_half_close()) {
    // The public side ends its connection once it has the last answer: a
    // close before that would cut the answer off (a stream reset travels
    // faster than the bytes before it are delivered).
    tunnel_.shutdown_send();
    co_await linger();
  }
  tunnel_.close();
  done_ = true;
  timer_.cancel();
  co_return totals_;
}

asio::awaitable<void> forwarder::linger() {
  deadline_ = clock::now() + target_.linger;
  arm_watchdog();  // replaces the wait for the idle deadline
  for (;;) {
    auto [ec, s] = co_await read_from(tunnel_, tunnel_reads_);
    if (ec) {
      co_return;
    }
  }
}

asio::awaitable<forwarder::head_read> forwarder::read_request_head() {
  for (;;) {
    if (!held_.empty()) {
      const http::parse_result r = requests_.parse(held_);
      if (r.error) {
        co_return head_read::not_http;
      }
      if (r.head_complete) {
        ready_ = r.consumed;
        head_len_ = r.consumed;
        request_done_ = r.message_complete;
        request_failed_ = false;
        co_return head_read::request;
      }
    }
    auto [ec, s] = co_await read_from(tunnel_, tunnel_reads_);
    if (s.size > 0) {
      touch();
      held_.append(s.bytes.get(), s.size);
    }
    if (ec) {
      // An unfinished head is dropped with the connection: nothing of it was sent.
      co_return head_read::ended;
    }
  }
}

void forwarder::frame_request_body() {
  while (!request_done_ && ready_ < held_.size()) {
    const http::parse_result r = requests_.parse(std::string_view(held_).substr(ready_));
    if (r.error) {
      request_failed_ = true;
      return;
    }
    ready_ += r.consumed;
    request_done_ = r.message_complete;
    if (r.consumed == 0) {
      return;
    }
  }
}

void forwarder::shut_local() {
  if (local_) {
    net::close_stream(*local_);
  }
}

void forwarder::drop_local() {
  shut_local();
  local_channel_.reset();
  local_.reset();
}

asio::awaitable<bool> forwarder::connect(bool allow_pooled) {
  drop_local();
  local_reused_ = false;
  if (allow_pooled) {
    local_ = pool_->take(addr_);
  }
  if (local_) {
    local_reused_ = true;
  } else {
    auto [ec, sock, failure] =
        co_await net::dial(target_.host, target_.port, std::nullopt, target_.dial_timeout);
    if (ec) {
      spdlog::warn("{}: cannot reach the local service at {}: {}", target_.url, addr_, failure);
      const std::string page = http::error_response(
          502, "Bad Gateway",
          "porthole could not reach the local service at " + addr_ + ": " + failure, false);
      co_await tunnel_.write(asio::buffer(page));
      co_return false;
    }
    ++totals_.dials;
    local_.emplace(std::move(sock));
    error_code ignored;
    local_->set_option(net::tcp::no_delay(true), ignored);
  }
  local_channel_.emplace(*local_);
  co_return true;
}

asio::awaitable<error_code> forwarder::send_to_local(std::string_view bytes, bool observed) {
  if (observed && observer_ != nullptr) {
    if (!bytes.empty()) {
      observer_->request_body(bytes);
    }
    if (request_done_) {
      observer_->request_end();
    }
  }
  if (bytes.empty()) {
    co_return error_code{};
  }
  co_return co_await local_channel_->write(asio::buffer(bytes.data(), bytes.size()));
}

asio::awaitable<error_code> forwarder::send_request_start(bool observed) {
  const std::string_view start = std::string_view(held_).substr(0, ready_);
  if (observed && observer_ != nullptr) {
    observer_->request_head(requests_.head());
  }
  if (kept_head_.empty()) {
    const std::string_view body = start.substr(head_len_);
    if (observed && observer_ != nullptr) {
      if (!body.empty()) {
        observer_->request_body(body);
      }
      if (request_done_) {
        observer_->request_end();
      }
    }
    co_return co_await local_channel_->write(asio::buffer(start.data(), start.size()));
  }
  if (observed && observer_ != nullptr) {
    if (ready_ > head_len_) {
      observer_->request_body(start.substr(head_len_));
    }
    if (request_done_) {
      observer_->request_end();
    }
  }
  std::string out = kept_head_;
  out.append(start.substr(head_len_));
  co_return co_await local_channel_->write(asio::buffer(out));
}

// The rest of a request body, read from the tunnel while the response may
// already be coming back (a service may answer before it has read all).
asio::awaitable<void> forwarder::send_request_body() {
  while (!request_done_ && !request_failed_) {
    auto [ec, s] = co_await read_from(tunnel_, tunnel_reads_);
    if (s.size > 0) {
      touch();
      const std::string_view input = with_held(held_, s);
      // Parse where the bytes lie: held_ is empty here unless bytes are.
      std::size_t used = 0;
      while (!request_done_ && used < input.size()) {
        const http::parse_result r = requests_.parse(input.substr(used));
        if (r.error) {
          request_failed_ = true;
          break;
        }
        used += r.consumed;
        request_done_ = r.message_complete;
        if (r.consumed == 0) {
          break;
        }
      }
      const error_code wec = co_await send_to_local(input.substr(0, used), true);
      hold(held_, input, used);
      ready_ = 0;
      if (wec) {
        request_failed_ = true;
      }
    }
    if (ec && !request_done_) {
      request_failed_ = true;
    }
  }
  if (request_failed_) {
    // The service must not take a cut-off body for a whole one.
    shut_local();
  }
}

asio::awaitable<after_exchange> forwarder::exchange() {
  const std::string method = requests_.head().method;
  const bool client_keeps_alive = requests_.head().keep_alive;
  // The public client's Connection: close ends the public connection (its
  // answer is its last); the service is not told, and keeps its connection.
  kept_head_ = client_keeps_alive
                   ? std::string()
                   : http::without_close_option(std::string_view(held_).substr(0, head_len_));
  frame_request_body();
  // Only a request that is whole in hand now, and that may be sent twice,
  // is ever sent twice.
  const bool retryable = idempotent(method) && request_done_;
  ++totals_.requests;

  const bool connected = co_await connect(true);
  if (!connected) {
    co_return after_exchange::end;
  }
  if (local_reused_) {
    ++totals_.reused;
  }
  responses_.expect(method);
  error_code wec = co_await send_request_start(true);
  if (!retryable) {
    held_.erase(0, ready_);
    ready_ = 0;
    if (!wec && !request_done_) {
      body_sender_running_ = true;
      auto self = shared_from_this();
      // (No co_await in this statement: g++ 12 destroys a lambda temporary
      // of a full expression holding one twice.)
      const auto executor = co_await asio::this_coro::executor;
      asio::co_spawn(executor, send_request_body(), [self](std::exception_ptr e) {
        if (e) {
          net::log_escaped(e, "request body");
          self->request_failed_ = true;
          self->shut_local();
        }
        self->body_sender_running_ = false;
        self->body_sender_done_.notify();
      });
    }
  }

  std::string resp_held;
  net::read_size resp_reads;
  bool got_response_bytes = false;
  bool complete = false;     // the final response's last byte went to the tunnel
  bool until_close = false;  // ... and it was delimited by the service's close
  bool switched = false;
  bool leftover = false;  // the service sent more than the response
  bool failed = false;
  while (!complete && !failed) {
    if (wec) {
      // Sending failed: nothing reached the service, or not all of it.
      if (!got_response_bytes && local_reused_ && retryable) {
        ++totals_.retried;
        const bool again = co_await connect(false);
        if (!again) {
          co_return after_exchange::end;
        }
        wec = co_await send_request_start(false);
        continue;
      }
      failed = true;
      break;
    }
    auto [ec, s] = co_await read_from(*local_channel_, resp_reads);
    if (s.size > 0) {
      touch();
      got_response_bytes = true;
      const std::string_view input = with_held(resp_held, s);
      std::size_t used = 0;
      // The final response's head as it goes out, when it must say close.
      std::size_t head_at = 0;
      std::size_t head_size = 0;
      std::string new_head;
      while (used < input.size()) {
        const http::parse_result r = responses_.parse(input.substr(used));
        if (r.error) {
          // Passed on as it is, and everything after it: portholed judges
          // the response (a 502 page if its head is bad) and says why.
          spdlog::debug("{}: the local service's response is not valid HTTP: {}", target_.url,
                        r.error.message());
          if (observer_ != nullptr) {
            observer_->lost_track("response is not valid HTTP: " + r.error.message());
          }
          switched = true;
          used = input.size();
          break;
        }
        if (r.head_complete && !kept_head_.empty() && responses_.head().status >= 200) {
          // The public client asked to close and the service was not told:
          // the answer says close, as the client's server must (RFC 9112 9.6).
          new_head = http::with_close_option(input.substr(used, r.consumed));
          head_at = used;
          head_size = new_head.empty() ? 0 : r.consumed;
        }
        if (observer_ != nullptr) {
          if (r.head_complete) {
            observer_->response_head(responses_.head());
          } else if (r.consumed > 0) {
            observer_->response_body(input.substr(used, r.consumed));
          }
          if (r.message_complete) {
            observer_->response_end();
          }
        }
        used += r.consumed;
        if (responses_.switched_protocols()) {
          // Only an upgrade request may switch, and those are relayed as
          // bytes from the start: this is a service that broke the rules.
          if (observer_ != nullptr) {
            observer_->lost_track("the service switched protocols unasked");
          }
          switched = true;
          used = input.size();
          break;
        }
        if (r.message_complete && responses_.pending() == 0) {
          complete = true;
          leftover = used < input.size();
          break;
        }
        if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
          break;
        }
      }
      if (used > 0) {
        std::string edited;
        std::string_view out = input.substr(0, used);
        if (head_size > 0) {
          edited.reserve(used + new_head.size());
          edited.append(input.substr(0, head_at));
          edited.append(new_head);
          edited.append(input.substr(head_at + head_size, used - head_at - head_size));
          out = edited;
        }
        const error_code tec = co_await tunnel_.write(asio::buffer(out.data(), out.size()));
        if (tec) {
          failed = true;
        }
      }
      if (switched) {
        break;
      }
      hold(resp_held, input, used);
    }
    if (ec && !complete && !failed && !switched) {
      if (ec == asio::error::eof && responses_.body_until_close() && responses_.pending() == 0) {
        complete = true;
        until_close = true;
        if (observer_ != nullptr) {
          observer_->response_end();
        }
      } else if (!got_response_bytes && local_reused_ && retryable) {
        // A kept connection the service closed just as the request went out.
        ++totals_.retried;
        const bool again = co_await connect(false);
        if (!again) {
          co_return after_exchange::end;
        }
        wec = co_await send_request_start(false);
      } else {
        failed = true;
      }
    }
    if (switched) {
      break;
    }
  }

  if (retryable) {
    held_.erase(0, ready_);
    ready_ = 0;
  }
  if (switched) {
    co_return after_exchange::raw;
  }
  if (!complete || !request_done_ || request_failed_) {
    // An answer before the whole request was sent, or a failure: this local
    // connection can carry nothing more, and neither can the public one,
    // whose next request would start at an unknown point. The public client
    // has its answer (if any) before the end of the stream.
    shut_local();
    tunnel_.shutdown_send();
  }
  while (body_sender_running_) {
    co_await body_sender_done_.wait_until(clock::time_point::max());
  }
  const bool service_keeps_alive = complete && responses_.head().keep_alive;
  responses_.release();
  if (failed || !complete || request_failed_ || !request_done_) {
    drop_local();
    co_return after_exchange::end;
  }
  requests_.release();
  const bool service_was_told_close = !client_keeps_alive && kept_head_.empty();
  if (!service_was_told_close && service_keeps_alive && !until_close && !leftover && local_) {
    local_channel_.reset();
    pool_->put(addr_, std::move(*local_));
  }
  drop_local();
  if (!client_keeps_alive || !service_keeps_alive || until_close) {
    co_return after_exchange::end;
  }
  co_return after_exchange::next_request;
}

// Bytes as they are, both ways, on a connection of its own (or the one the
// protocol switched on): what the tunnel sent that was not forwarded yet first.
asio::awaitable<void> forwarder::relay_rest() {
  if (!local_) {
    const bool connected = co_await connect(false);
    if (!connected) {
      co_return;
    }
  }
  ++totals_.requests;
  std::string initial = std::move(held_);
  held_ = std::string();
  ready_ = 0;
  // The relay has a watchdog of its own.
  done_ = true;
  timer_.cancel();
  co_await net::relay(*local_, tunnel_, std::move(initial), target_.idle, true, observer_);
}

// Nothing moving either way for target_.idle ends both sides; one timer,
// re-armed only when it fires.
void forwarder::arm_watchdog() {
  timer_.expires_at(deadline_);
  timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->done_) {
      return;
    }
    if (clock::now() >= self->deadline_) {
      spdlog::debug("{}: idle for too long; closing", self->target_.url);
      self->tunnel_.close();
      self->shut_local();
      return;
    }
    self->arm_watchdog();
  });
}

}  // namespace

asio::awaitable<local_http_totals> forward_http(net::channel& tunnel,
                                                std::shared_ptr<local_pool> pool,
                                                local_http_target target, std::string initial,
                                                http_observer* observer) {
  const auto executor = co_await asio::this_coro::executor;
  auto f = std::make_shared<forwarder>(tunnel, std::move(pool), std::move(target), observer,
                                       executor, std::move(initial));
  co_return co_await f->run();
}

}  // namespace porthole::client
