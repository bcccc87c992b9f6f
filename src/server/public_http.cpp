#include "server/public_http.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <optional>
#include <type_traits>

#include "http/error.h"
#include "http/forwarding.h"
#include "http/message_parser.h"
#include "log/event.h"
#include "net/event.h"
#include "net/frame_io.h"
#include "net/read_size.h"
#include "net/relay.h"
#include "net/spawn.h"
#include "server/connection_limits.h"
#include "server/control_session.h"
#include "server/edge_decision.h"
#include "server/public_h2.h"
#include "server/server.h"

namespace porthole::server {

namespace asio = net::asio;
using clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t flush_threshold = 64 * 1024;
// After a time-out, how long its answer (504, 408) may take to go out before
// the connection is closed anyway.
constexpr auto timeout_answer_time = std::chrono::seconds(5);

using byte_buffer = boost::beast::flat_buffer;

// The reason phrase of a status the edge answers a refused request with.
std::string_view reason_of(unsigned status) {
  switch (status) {
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Bad Request";
  }
}

// The rule a refused request broke, for the log: porthole's own name, or
// the Beast parser's for a fault only it finds (in a body, say).
std::string rule_of(const net::error_code& ec) {
  if (ec == boost::beast::http::error::header_limit) {
    return "header_limit";
  }
  const char* name = http::rule_name(ec);
  if (*name != '\0') {
    return name;
  }
  std::string text = ec.message();
  for (char& c : text) {
    c = c == ' ' ? '_' : c;
  }
  return text;
}

std::string_view view(const byte_buffer& b) {
  const auto d = b.data();
  return {static_cast<const char*>(d.data()), d.size()};
}

// An emptied buffer gives its memory back: an idle connection keeps none.
void release_if_empty(byte_buffer& b) {
  if (b.size() == 0 && b.capacity() > 0) {
    b.shrink_to_fit();
  }
}

// Reads what is available from `s` onto the end of `buf` (no zero-filling).
// `cancel` ends the read early (operation_aborted), leaving `s` usable.
template <class Stream>
asio::awaitable<std::tuple<net::error_code, std::size_t>> read_more(
    Stream& s, byte_buffer& buf, net::read_size& size, asio::cancellation_slot cancel,
    bool wait_first = true) {
  const auto token = [cancel] {
    return asio::as_tuple(asio::bind_cancellation_slot(cancel, asio::use_awaitable));
  };
  if constexpr (std::is_same_v<Stream, net::tcp::socket>) {
    // An idle keep-alive connection holds no buffer while it waits. (A TLS
    // stream cannot wait this way: Asio keeps read-ahead ciphertext hidden.)
    if (wait_first && buf.size() == 0) {
      auto [wec] = co_await s.async_wait(net::tcp::socket::wait_read, token());
      if (wec) {
        co_return std::tuple{wec, std::size_t{0}};
      }
    }
  }
  auto [ec, n] = co_await s.async_read_some(buf.prepare(size.next()), token());
  buf.commit(n);
  size.update(n);
  co_return std::tuple{ec, n};
}

// How long a public connection waits for the node that serves its name (while
// the client moves to another node), and how often it asks again.
constexpr auto relay_patience = std::chrono::seconds(5);
constexpr auto relay_retry_pause = std::chrono::milliseconds(100);
// How long a request for a name this node does not know waits while the
// node reads the cluster's names again after losing its watch.
constexpr auto catch_up_patience = std::chrono::seconds(2);
// How long a keep-alive connection waits for its next request before its
// multiplexed stream is given back (docs/THREADS.md, "Memory").
constexpr auto stream_release_after = std::chrono::seconds(1);

// The public stream as a channel for the relay to another node; the session
// keeps owning it.
template <class Stream>
class borrowed_channel final : public net::channel {
 public:
  explicit borrowed_channel(Stream& s) : s_(s) {}
  asio::awaitable<std::tuple<net::error_code, std::size_t>> read_some(
      asio::mutable_buffer b) override {
    auto [ec, n] = co_await s_.async_read_some(b, net::use_nothrow);
    co_return std::tuple{ec, n};
  }
  asio::awaitable<void> wait_readable() override {
    if constexpr (std::is_same_v<Stream, net::tcp::socket>) {
      auto [ec] = co_await s_.async_wait(net::tcp::socket::wait_read, net::use_nothrow);
      (void)ec;  // shows in the read that follows
    }
  }
  asio::awaitable<net::error_code> write(asio::const_buffer b) override {
    auto [ec, n] = co_await asio::async_write(s_, b, net::use_nothrow);
    co_return ec;
  }
  bool can_half_close() const override { return std::is_same_v<Stream, net::tcp::socket>; }
  void shutdown_send() override {
    net::error_code ignored;
    net::lowest_socket(s_).shutdown(net::tcp::socket::shutdown_send, ignored);
  }
  void close() override { net::close_stream(s_); }

 private:
  Stream& s_;
};

// Counts the bytes of a public connection relayed to another node for /metrics.
class public_byte_counter final : public net::relay_observer {
 public:
  public_byte_counter(std::shared_ptr<metrics> m, public_protocol p) : m_(std::move(m)), p_(p) {}
  void to_near(std::string_view bytes) noexcept override {
    m_->out(p_) += bytes.size();
    m_->relay_bytes_in += bytes.size();
  }
  void to_tunnel(std::string_view bytes) noexcept override {
    m_->in(p_) += bytes.size();
    m_->relay_bytes_out += bytes.size();
  }

 private:
  std::shared_ptr<metrics> m_;
  public_protocol p_;
};

// One public connection. Two pumps run at once: requests (public -> proxy),
// in run(), and responses (proxy -> public), in a coroutine of its own from
// the first forwarded request on; a timer enforces the time-outs. Responses
// are counted so that an answer the edge gives itself (401, 408, 421, 431,
// ...) goes out only after every earlier response: `pending_` counts requests
// forwarded whose responses are not yet fully written to the public side, and
// only the response pump writes to the public side while it is non-zero.
//
// Lifetimes (docs/SECURITY.md, "Coroutines and what they touch"): the session
// owns the public stream, and everything that runs on its behalf shares the
// session: the response pump's completion handler and the timer's handler
// hold `self`. run() returns only once the response pump has ended, and the
// timer never starts a coroutine: it cancels the request pump's read and
// lets that pump write the 408 itself. So nothing of the connection is in
// flight when run() returns, and nothing it touches can be freed under it.
template <class Stream>
class public_http_session : public std::enable_shared_from_this<public_http_session<Stream>> {
 public:
  public_http_session(server& srv, std::unique_ptr<Stream> stream, std::string scheme,
                      public_peer from, bool relayed, std::optional<pinned_public> pinned)
      : relayed_(relayed),
        pinned_(std::move(pinned)),
        counters_(pinned_ ? pinned_->counters : srv.shared_counters()),
        server_(srv),
        cfg_(srv.config()),
        stream_(std::move(stream)),
        public_(*stream_),
        scheme_(std::move(scheme)),
        protocol_(scheme_ == "https" ? public_protocol::https : public_protocol::http),
        client_ip_(std::move(from.ip)),
        client_addr_(std::move(from.addr)),
        req_(http::parser_limits{cfg_.header_limit, cfg_.max_header_fields}),
        resp_(http::parser_limits{64 * 1024}),
        timer_(public_.get_executor()) {}

  // Serves the connection to its end. The frame owns the session through
  // `self` (this session), so no caller's frame needs to: an idle
  // connection holds one frame less.
  asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<public_http_session> self) {
    touch();
    // The first head is due read_header_timeout after the connection opens:
    // a connection that never sends one holds its socket no longer.
    head_started_ = last_activity_;
    rearm();
    co_await request_pump();
    if (to_h2_) {
      done_ = true;
      timer_.cancel();
      // (Named first: temporaries in a co_await expression trip g++ 12.)
      public_peer from{client_addr_, client_ip_, {}};
      auto serving = serve_public_h2(server_, std::move(stream_), scheme_, std::move(from),
                                     std::string(view(in_)), std::move(pinned_));
      co_await std::move(serving);
      co_return;
    }
    while (response_running_) {
      co_await response_done_.wait_until(clock::time_point::max());
    }
    net::close_stream(public_);
    if (proxy_) {
      proxy_->close();
    }
    // From here the caller may destroy the public stream: the timer must not touch it.
    done_ = true;
    timer_.cancel();
  }

 private:
  // ---- requests: public -> proxy ----

  asio::awaitable<void> request_pump() {
    for (;;) {
      if (head_timed_out_) {
        co_await reply_local(408, "Request Timeout", "The request head did not arrive in time.",
                             false);
        co_return finish();
      }
      if (switched_) {
        co_await raw_public_to_proxy();
        co_return;
      }
      const http::parse_result r = req_.parse(view(in_));
      if (r.error && !served_any_ && !header_done_ && starts_h2_preface(view(in_))) {
        // HTTP/2 with prior knowledge (h2c): the connection is HTTP/2's.
        to_h2_ = true;
        co_return;
      }
      if (r.error) {
        if (!discard_ && header_done_) {
          out_.append(view(in_).substr(0, r.consumed));  // the body's valid part
        }
        co_await refuse(r.error, header_done_);
        co_return finish();
      }
      if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
        const bool ok = co_await flush_to_proxy();
        if (!ok) {
          co_return finish();
        }
        if (in_.size() == 0 && req_.at_message_start() && head_byte_seen_) {
          head_started_.reset();
        } else if (!head_started_ && !header_done_) {
          head_started_ = clock::now();
          rearm();
        }
        release_if_empty(in_);
        if (in_.size() == 0 && req_.at_message_start()) {
          req_.release();  // between requests: hold nothing while idle
        }
        if (head_timed_out_) {
          continue;  // timed out while flushing: no read to cancel
        }
        net::error_code ec;
        std::size_t n = 0;
        if (std::is_same_v<Stream, net::tcp::socket> && in_.size() == 0) {
          // Waited for here, not in read_more: an idle connection holds no
          // frame of a read it has not started.
          auto waiting =
              asio::as_tuple(asio::bind_cancellation_slot(read_cancel_.slot(), asio::use_awaitable));
          std::tie(ec) = co_await net::lowest_socket(public_).async_wait(
              net::tcp::socket::wait_read, std::move(waiting));
        }
        if (!ec) {
          std::tie(ec, n) = co_await read_more(public_, in_, in_size_, read_cancel_.slot(), false);
        }
        counters_->in(protocol_) += n;
        if (head_timed_out_) {
          continue;  // answered at the top of the loop
        }
        if (n > 0) {
          touch();
          head_byte_seen_ = true;
          if (!header_done_ && !head_started_) {
            head_started_ = clock::now();
            rearm();
          }
        }
        if (ec) {
          // The client finished sending (or left): answer what it asked, then close.
          co_await wait_answered();
          co_return finish();
        }
        continue;
      }
      bool close_after = false;
      if (r.head_complete) {
        header_done_ = true;
        served_any_ = true;
        head_started_.reset();
        const bool ok = co_await on_head(view(in_).substr(0, r.consumed), close_after);
        if (node_) {
          co_return co_await relay_to_node();
        }
        if (!ok) {
          co_return finish();
        }
      } else if (!discard_) {
        out_.append(view(in_).substr(0, r.consumed));
      }
      in_.consume(r.consumed);
      if (r.message_complete) {
        header_done_ = false;
        discard_ = false;
        if (close_after) {
          co_return finish();
        }
        if (forwarded_upgrade_) {
          // What follows an upgrade request is HTTP only if the backend refuses it.
          forwarded_upgrade_ = false;
          const bool ok = co_await flush_to_proxy();
          if (!ok) {
            co_return finish();
          }
          co_await wait_answered();
          if (switched_) {
            continue;
          }
        }
        if (!req_.head().keep_alive) {
          const bool ok = co_await flush_to_proxy();
          if (!ok) {
            co_return finish();
          }
          co_await wait_answered();
          co_return finish();
        }
      }
      if (out_.size() >= flush_threshold) {
        const bool flushed = co_await flush_to_proxy();
        if (!flushed) {
          co_return finish();
        }
      }
    }
  }

  // Carries out the edge's decision on a request whose head just completed
  // (server/edge_decision.h): forward it, or answer it here. Returns false
  // when the connection must end now.
  asio::awaitable<bool> on_head(std::string_view head_bytes, bool& close_after) {
    const http::request_head& h = req_.head();
    const request_facts request{h.find("host"), h.find("authorization"), h.keep_alive};
    const std::string host = request_host(request);
    route to;
    if (pinned_) {
      to.local = pinned_->t;
    } else if (!host.empty()) {
      to = co_await settle_route(host);
    }
    for (bool first_try = true;; first_try = false) {
      connection_facts conn = connection();
      edge_decision d = decide(request, facts_of(to), conn);
      if (d.what == edge_decision::action::relay) {
        const bool handed_off = co_await reach_owner(host, to);
        if (handed_off) {
          co_return false;
        }
        conn.relay_failed = true;
        d = decide(request, facts_of(to), conn);
      }
      switch (d.what) {
        case edge_decision::action::refuse:
          co_await refuse(http::error::missing_host, false);
          co_return false;
        case edge_decision::action::close:
        case edge_decision::action::relay:
          co_return false;
        case edge_decision::action::answer: {
          local_answer& a = d.answer;
          if (a.counted) {
            counters_->count(*a.counted);
          }
          const bool keep_alive = a.then == after_answer::keep_alive;
          if (a.then != after_answer::close) {
            discard_ = true;
            close_after = !keep_alive;
          }
          co_await reply_local(a.status, std::move(a.reason), std::move(a.message), keep_alive,
                               std::move(a.extra_fields));
          co_return a.then != after_answer::close && !closed_;
        }
        case edge_decision::action::forward:
          break;
      }
      const std::shared_ptr<tunnel> t = to.local;
      if (released_) {
        // Its stream was given back while the connection waited: a new one.
        // The old one is closed rather than waited for (a client that does
        // not end it would hold this request up).
        proxy_->close();
        while (response_running_) {
          co_await response_done_.wait_until(clock::time_point::max());
        }
        proxy_.reset();
        released_ = false;
        if (closed_) {
          co_return false;
        }
      }
      out_ += http::add_forwarded_fields(head_bytes, d.forwarded);
      if (!proxy_) {
        tunnel_ = t;
        // The response pump starts reading only after this coroutine next
        // suspends, by which time expect() below has run.
        const opened o = co_await open_proxy(t, first_try && !pinned_);
        if (o == opened::session_gone) {
          // The client's connection ended between routing and opening (it
          // reconnects, or moves to another node): routed again once the
          // name has settled.
          tunnel_.reset();
          const auto reconnecting = [](const route& r) {
            return r.held || r.moving || (r.local && !session_alive(*r.local));
          };
          to = co_await wait_for_route(host, relay_patience, reconnecting);
          continue;
        }
        if (o != opened::yes) {
          co_return false;
        }
      }
      resp_.expect(h.method);
      ++pending_;
      if (deadline() < timer_.expiry()) {
        rearm();  // the response time-out may be shorter than the wait it replaces
      }
      forwarded_upgrade_ = h.upgrade;
      co_return true;
    }
  }

  static bool session_alive(const tunnel& t) {
    const auto session = t.session.lock();
    return session && !session->closed();
  }

  // The directory's route for `host`, after a short wait where it is about
  // to change: while the name's node shuts down and its client moves, or
  // while this node catches up with the cluster's names.
  asio::awaitable<route> settle_route(const std::string& host) {
    route to = server_.find_route(scheme_, host);
    if (server_.stopping() && !to.local && pending_ == 0) {
      co_return to;  // not served here any more: decided without a wait
    }
    if (to.moving && !relayed_ && !tunnel_) {
      // (Named: a temporary inside a co_await expression trips g++ 12.)
      const auto moving = [](const route& r) { return r.moving; };
      to = co_await wait_for_route(host, relay_patience, moving);
    }
    if (!to.local && !to.remote && !to.held && !relayed_ && server_.names_catching_up()) {
      // A name this node does not know may be another node's.
      const auto unknown = [this](const route& r) {
        return !r.local && !r.remote && server_.names_catching_up();
      };
      to = co_await wait_for_route(host, catch_up_patience, unknown);
    }
    co_return to;
  }

  connection_facts connection() const {
    connection_facts c;
    c.scheme = scheme_;
    c.client_ip = client_ip_;
    if (pinned_) {
      c.pinned = pinned_->t.get();
      c.pinned_usable = !pinned_->via.session->closed();
    }
    c.relayed = relayed_;
    c.serving = tunnel_.get();
    c.answers_owed = pending_ > 0;
    c.stopping = server_.stopping();
    return c;
  }

  static route_facts facts_of(const route& to) {
    return {to.local.get(), to.remote.has_value(), to.held};
  }

  // Hands the connection to the node that serves `host`. A node that cannot
  // be reached, or that no longer has the claim the directory showed (it
  // moved, the node died and the client claimed it again elsewhere), is
  // asked again after the directory had time to learn: a client that moves
  // between nodes costs its public connections a wait, not an error. False
  // if not handed off; `to` is then the latest route (it may be local now).
  asio::awaitable<bool> reach_owner(const std::string& host, route& to) {
    const auto give_up = clock::now() + relay_patience;
    asio::steady_timer pause(timer_.get_executor());
    while (to.remote && !to.local) {
      relay_request req{host, scheme_, to.remote->revision, client_ip_, ""};
      server::relay_result r = co_await server_.open_relay(*to.remote, std::move(req));
      if (r.stream) {
        node_ = std::move(r.stream);
        co_return true;
      }
      log::debug("relay to another node failed", {{"name", host}, {"error", r.error}});
      if (!r.retry || clock::now() >= give_up || closed_) {
        log::warn("cannot hand a public connection to the node that serves it",
                  {{"name", host}, {"node", to.remote->node_id}, {"error", r.error}});
        co_return false;
      }
      pause.expires_after(relay_retry_pause);
      co_await pause.async_wait(net::use_nothrow);
      to = server_.find_route(scheme_, host);
    }
    co_return false;
  }

  // Asks the directory again every relay_retry_pause while `waiting` holds
  // for its answer, for at most `patience`: a short wait instead of a 503 or
  // a 404 while the cluster's view of the name is about to change. The
  // latest route.
  template <class While>
  asio::awaitable<route> wait_for_route(const std::string& host, clock::duration patience,
                                        While waiting) {
    const auto give_up = clock::now() + patience;
    asio::steady_timer pause(timer_.get_executor());
    route to = server_.find_route(scheme_, host);
    while (waiting(to) && clock::now() < give_up && !closed_) {
      pause.expires_after(relay_retry_pause);
      co_await pause.async_wait(net::use_nothrow);
      to = server_.find_route(scheme_, host);
    }
    co_return to;
  }

  // Carries the connection to the other node as it is: the head just read
  // and all after it. That node routes, checks, forwards and times out.
  asio::awaitable<void> relay_to_node() {
    relaying_ = true;
    timer_.cancel();
    std::string first(view(in_));
    in_.clear();
    net::tls_channel to_node(std::move(node_));
    const net::error_code ec = co_await to_node.write(asio::buffer(first));
    if (ec) {
      co_return finish();
    }
    borrowed_channel<Stream> near(public_);
    public_byte_counter bytes(counters_, protocol_);
    // The link to the other node cannot half-close: the public client's end
    // of sending ends the relay (an HTTP client that half-closes and waits
    // for its answer is rare), so the other node does not wait out its idle
    // time-out for a client that left.
    co_await net::relay(near, to_node, {}, cfg_.response_timeout, true, &bytes);
  }

  // Starts a proxy connection with the first request's head in the same write.
  enum class opened {
    yes,
    no,            ///< answered here (502, 503) or the connection ends
    session_gone,  ///< the tunnel's client connection ended first; nothing was answered
  };

  // `may_reroute`: if the tunnel's client connection ended before it gave a
  // stream, say so (session_gone) instead of answering 502.
  asio::awaitable<opened> open_proxy(const std::shared_ptr<tunnel>& t, bool may_reroute) {
    // A pinned connection was admitted where it was accepted; a connection
    // whose stream was given back is still admitted.
    if (auto session = pinned_ || conn_slot_ ? nullptr : t->session.lock()) {
      conn_slot_ = session->admit_public(client_addr(), t->url);
      if (!conn_slot_) {
        out_.clear();
        const std::string why = "Tunnel " + t->host +
                                " has as many open connections as its server allows; try again "
                                "later.";
        co_await reply_local(503, "Service Unavailable", why, false);
        co_return opened::no;
      }
    }
    std::unique_ptr<net::channel> conn;
    if (pinned_) {
      // (Each awaitable named first: temporaries in a co_await expression,
      // default arguments included, trip g++ 12.)
      auto opening =
          open_stream(pinned_->via, t->url, client_addr(), std::exchange(out_, {}), counters_);
      conn = co_await std::move(opening);
    } else {
      auto opening = porthole::server::start_proxy(t, client_addr(), std::exchange(out_, {}),
                                                   clock::now() + cfg_.proxy_wait_timeout);
      conn = co_await std::move(opening);
    }
    if (conn) {
      proxy_ = std::move(conn);
      response_running_ = true;
      asio::co_spawn(timer_.get_executor(), response_pump(),
                     [self = this->shared_from_this()](std::exception_ptr e) {
                       if (e) {
                         net::log_escaped(e, "public http responses");
                         self->closed_ = true;
                         net::close_stream(self->public_);
                       }
                       self->response_running_ = false;
                       self->response_done_.notify();
                     });
      co_return opened::yes;
    }
    out_.clear();
    if (server_.stopping() && pending_ == 0) {
      // The client's session ended as this node shuts down (it moves to
      // another node): unanswered, as for a name no longer served here, so
      // that the request is sent again on a new connection. Nothing of it
      // reached the service.
      co_return opened::no;
    }
    if (may_reroute && !session_alive(*t) && !closed_) {
      co_return opened::session_gone;
    }
    counters_->count(error_kind::proxy_timeout);
    co_await reply_local(
        502, "Bad Gateway",
        "Tunnel " + t->host + " is not reachable: its client gave no connection in time.", false);
    co_return opened::no;
  }

  asio::awaitable<bool> flush_to_proxy() {
    if (out_.empty() || !proxy_) {
      co_return !closed_;
    }
    const net::error_code ec = co_await proxy_->write(asio::buffer(out_));
    out_ = std::string();
    co_return !ec;
  }

  asio::awaitable<void> raw_public_to_proxy() {
    out_ += view(in_);
    in_.clear();
    in_.shrink_to_fit();
    for (;;) {
      const bool ok = co_await flush_to_proxy();
      if (!ok) {
        co_return finish();
      }
      byte_buffer chunk;
      auto [ec, n] = co_await read_more(public_, chunk, in_size_, {});
      counters_->in(protocol_) += n;
      if (n > 0) {
        touch();
        out_ += view(chunk);
      }
      if (ec) {
        co_await flush_to_proxy();
        co_return;  // the response side ends the connection
      }
    }
  }

  // Waits until every forwarded request is answered, or the upgrade is
  // decided. What is still buffered for the proxy goes out first: a
  // pipelined request waiting there would otherwise never be answered.
  asio::awaitable<void> wait_answered() {
    const bool ok = co_await flush_to_proxy();
    if (!ok) {
      closed_ = true;
      co_return;
    }
    while (pending_ > 0 && !closed_ && !switched_) {
      co_await answered_.wait_until(clock::time_point::max());
    }
  }

  // Refuses a request that breaks a rule of HTTP/1.1 framing: logged once,
  // answered with a small page after every response owed before it, and the
  // connection ends. `in_body`: the fault is in the body of a request whose
  // head was already answered here (nothing more is said) or forwarded (the
  // proxy connection is dropped, and the client gets the refusal only if no
  // byte of the service's answer to it has been sent yet).
  asio::awaitable<void> refuse(net::error_code ec, bool in_body) {
    const unsigned status = http::status_of(ec);
    counters_->count(error_kind::bad_request);
    log::warn("public request refused; closing", {{"peer", client_addr()},
                                                  {"scheme", scheme_},
                                                  {"status", status},
                                                  {"rule", rule_of(ec)},
                                                  {"error", ec.message()}});
    std::string message = ec == boost::beast::http::error::header_limit
                              ? "The request head is larger than this server accepts."
                              : "The request is not valid HTTP/1.1: " + ec.message() + ".";
    if (in_body && discard_) {
      co_return;
    }
    const std::string reason(reason_of(status));
    if (!in_body || !proxy_) {
      co_await reply_local(status, reason, message, false);
      co_return;
    }
    co_await flush_to_proxy();
    // Earlier responses go out whole; this request's own is not waited for.
    while (pending_ > 1 && !closed_ && !switched_) {
      co_await answered_.wait_until(clock::time_point::max());
    }
    refused_ = true;  // the response pump must not answer this one with a 502
    proxy_->close();
    while (response_running_) {
      co_await response_done_.wait_until(clock::time_point::max());
    }
    if (response_started_ || switched_) {
      co_return;  // the client already has part of an answer; it can only be cut
    }
    const std::string response = http::error_response(status, reason, message, false);
    co_await write_public(asio::buffer(response));
  }

  // Answers a request here, after every response owed before it.
  // Parameters by value: they live in the coroutine frame.
  asio::awaitable<void> reply_local(unsigned status, std::string reason, std::string message,
                                    bool keep_alive, std::string extra = {}) {
    co_await wait_answered();
    if (closed_) {
      co_return;
    }
    log::debug("error response",
               {{"ip", client_ip_}, {"status", status}, {"reason", reason}, {"message", message}});
    const std::string response = http::error_response(status, reason, message, keep_alive, extra);
    auto [ec, n] = co_await write_public(asio::buffer(response));
    if (ec) {
      closed_ = true;
    }
    touch();
  }

  void finish() {
    closed_ = true;
    // Ends the response pump's read; run() closes both sides.
    if (proxy_) {
      proxy_->close();
    }
    answered_.notify();
  }

  // ---- responses: proxy -> public ----

  asio::awaitable<void> response_pump() {
    byte_buffer rbuf;
    net::read_size rsize;
    for (;;) {
      std::string wbuf;
      release_if_empty(rbuf);
      if (rbuf.size() == 0 && pending_ == 0 && !response_started_) {
        resp_.release();
      }
      co_await proxy_->wait_readable();
      auto [ec, n] = co_await proxy_->read_some(rbuf.prepare(rsize.next()));
      rbuf.commit(n);
      rsize.update(n);
      if (n > 0) {
        touch();
        std::size_t completed = 0;
        const bool valid = parse_responses(rbuf, wbuf, completed);
        if (!valid) {
          counters_->count(error_kind::bad_response);
          log::warn("the local service's response is not valid HTTP; closing",
                    {{"url", tunnel_->url}, {"error", resp_error_.message()}});
          if (!wbuf.empty()) {
            co_await write_public(asio::buffer(wbuf));
          }
          if (!response_started_ && pending_ > completed && !refused_) {
            const std::string response = http::error_response(
                502, "Bad Gateway", "The local service's response is not valid HTTP.", false);
            co_await write_public(asio::buffer(response));
          }
          break;
        }
        auto [wec, written] = co_await write_public(asio::buffer(wbuf));
        if (wec) {
          break;
        }
        pending_ -= completed;
        if (completed > 0 || switched_) {
          answered_.notify();
        }
        if (pending_ == 0 && deadline() < timer_.expiry()) {
          rearm();  // for the stream's release
        }
      }
      if (ec) {
        if (released_ && pending_ == 0 && !response_started_) {
          // The client ended the stream given back: the connection waits
          // for its next request without one.
          proxy_->close();
          co_return;
        }
        co_await on_proxy_closed();
        break;
      }
    }
    closed_ = true;
    if (!refused_) {
      net::close_stream(public_);  // else the request side still writes its refusal
    }
    answered_.notify();
  }

  // Moves whole parsed pieces of responses from rbuf to wbuf; counts final
  // responses completed. False if the bytes are not a valid response.
  bool parse_responses(byte_buffer& rbuf, std::string& wbuf, std::size_t& completed) {
    const std::string_view bytes = view(rbuf);
    std::size_t used = 0;
    while (used < bytes.size()) {
      if (switched_) {
        wbuf.append(bytes.substr(used));
        used = bytes.size();
        break;
      }
      if (resp_.pending() == 0 && !response_started_) {
        resp_error_ = boost::beast::http::error::unexpected_body;
        rbuf.consume(used);
        return false;  // bytes nobody asked for
      }
      const http::parse_result r = resp_.parse(bytes.substr(used));
      if (r.error) {
        resp_error_ = r.error;
        rbuf.consume(used);
        return false;
      }
      if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
        break;
      }
      if (r.head_complete) {
        response_started_ = true;
      }
      wbuf.append(bytes.substr(used, r.consumed));
      used += r.consumed;
      if (r.message_complete) {
        response_started_ = false;
        // An interim 1xx (other than 101) leaves its request unanswered.
        const unsigned status = resp_.head().status;
        if (status >= 200 || status == 101) {
          ++completed;
        }
        if (resp_.switched_protocols()) {
          switched_ = true;
        }
      }
    }
    rbuf.consume(used);
    return true;
  }

  asio::awaitable<void> on_proxy_closed() {
    if (response_started_ && resp_.body_until_close()) {
      --pending_;  // EOF is this response's end
      co_return;
    }
    if (pending_ > 0 && !response_started_ && !switched_ && !refused_) {
      const std::string response =
          response_timed_out_
              ? http::error_response(504, "Gateway Timeout",
                                     "The local service sent no answer within " +
                                         std::to_string(cfg_.response_timeout.count()) + "s.",
                                     false)
              : http::error_response(502, "Bad Gateway",
                                     "The tunnel's client closed the connection without an answer.",
                                     false);
      co_await write_public(asio::buffer(response));
    }
  }

  // ---- time-outs ----

  // When the connection times out: the head's deadline while a head is
  // arriving, else the idle limit (longer while a response is owed).
  clock::time_point deadline() const {
    if (timed_out_at_) {
      return *timed_out_at_ + timeout_answer_time;
    }
    if (head_started_) {
      return *head_started_ + cfg_.read_header_timeout;
    }
    const clock::time_point idle =
        last_activity_ + (pending_ > 0 ? clock::duration(cfg_.response_timeout)
                                       : clock::duration(cfg_.http_idle_timeout));
    return releasable() ? std::min(idle, last_activity_ + stream_release_after) : idle;
  }

  // Between requests, with every response written and nothing of a next
  // request read: a multiplexed stream (which can half-close) then holds
  // memory on both sides for nothing, and costs one frame to open again.
  // A TLS proxy connection (ngrok 1.x, --no-mux) is kept: a new one costs
  // the client a dial.
  bool releasable() const {
    return proxy_ && response_running_ && !released_ && pending_ == 0 && !response_started_ &&
           !switched_ && !forwarded_upgrade_ && !closed_ && !head_started_ && !timed_out_at_ &&
           out_.empty() && in_.size() == 0 && proxy_->can_half_close();
  }

  // Tells the client no request follows on the stream; it ends its side,
  // which ends the response pump quietly. The next request opens a new one.
  void release_stream() {
    released_ = true;
    proxy_->shutdown_send();
  }

  // (Re)starts the timer for the current deadline. Activity only moves the
  // deadline later, so the timer re-arms itself when it fires early.
  void rearm() {
    if (done_) {
      return;
    }
    timer_.expires_at(deadline());
    timer_.async_wait([self = this->shared_from_this()](const net::error_code& ec) {
      if (ec || self->done_ || self->relaying_) {
        return;
      }
      if (clock::now() < self->deadline()) {
        self->rearm();
        return;
      }
      self->time_out();
    });
  }

  void time_out() {
    if (timed_out_at_) {
      close_all();  // its answer did not go out in time
      return;
    }
    if (releasable()) {
      release_stream();
      rearm();
      return;
    }
    if (pending_ > 0 && !response_started_ && !switched_ && proxy_ && !closed_) {
      // No answer in time. Ending the proxy side ends the response pump,
      // which says so with a 504 (it alone writes to the public side while
      // responses are owed); the connection closes after, or at the latest
      // when the timer fires again.
      counters_->count(error_kind::response_timeout);
      log::info("no answer from the local service in time; 504",
                {{"url", tunnel_->url}, {"timeout", seconds_text(cfg_.response_timeout)}});
      response_timed_out_ = true;
      timed_out_at_ = clock::now();
      proxy_->close();
      rearm();
      return;
    }
    if (head_started_ && pending_ == 0 && !closed_) {
      counters_->count(error_kind::header_timeout);
      log::warn("public request head not complete in time; closing",
                {{"peer", client_addr()},
                 {"scheme", scheme_},
                 {"timeout", seconds_text(cfg_.read_header_timeout)},
                 {"status", head_byte_seen_ ? "408" : "none"}});
      if (!head_byte_seen_) {
        close_all();  // nothing was asked: nothing to answer
        return;
      }
      // The request pump, the one writer of local answers, says 408: its
      // read ends here (partial cancellation leaves the stream usable).
      head_timed_out_ = true;
      timed_out_at_ = clock::now();
      read_cancel_.emit(asio::cancellation_type::partial);
      rearm();
      return;
    }
    close_all();
  }

  void close_all() {
    closed_ = true;
    net::close_stream(public_);
    if (proxy_) {
      proxy_->close();
    }
    answered_.notify();
  }

  void touch() { last_activity_ = clock::now(); }

  // Writes to the public side, counting the bytes for /metrics.
  asio::awaitable<std::tuple<net::error_code, std::size_t>> write_public(asio::const_buffer b) {
    auto [ec, n] = co_await asio::async_write(public_, b, net::use_nothrow);
    counters_->out(protocol_) += n;
    co_return std::tuple{ec, n};
  }

  const std::string& client_addr() const { return client_addr_; }

  bool relayed_;                         ///< handed here by another node: never handed on
  std::optional<pinned_public> pinned_;  ///< served on another shard: server_ is not asked
  std::shared_ptr<metrics> counters_;    ///< this thread's
  server& server_;
  const server_config& cfg_;
  std::unique_ptr<Stream> stream_;         ///< the public connection, owned here
  std::unique_ptr<net::tls_stream> node_;  ///< to the node that serves the name, once accepted
  bool relaying_ = false;
  Stream& public_;  ///< *stream_
  std::string scheme_;
  public_protocol protocol_;
  std::string client_ip_;
  std::string client_addr_;  ///< host:port
  http::request_parser req_;
  http::response_parser resp_;
  std::unique_ptr<net::channel> proxy_;
  std::optional<public_conn_slot> conn_slot_;  ///< counts this connection against its client
  std::shared_ptr<tunnel> tunnel_;
  byte_buffer in_;  // public bytes not yet parsed
  net::read_size in_size_;
  std::string out_;  // bytes for the proxy, not yet written
  std::size_t pending_ = 0;
  bool header_done_ = false;
  bool discard_ = false;
  bool forwarded_upgrade_ = false;
  bool response_started_ = false;
  bool switched_ = false;
  bool closed_ = false;
  bool done_ = false;
  bool response_running_ = false;
  bool released_ = false;  ///< the stream was given back between requests; the pump ends
  bool served_any_ = false;  ///< a request head has been read on the connection
  bool to_h2_ = false;       ///< the client sent the HTTP/2 preface: served as HTTP/2
  bool refused_ = false;         // a request was refused after its head was forwarded
  bool head_byte_seen_ = false;  // the client has sent something
  net::error_code resp_error_;   // why the service's response was not valid HTTP
  std::optional<clock::time_point> head_started_;
  bool response_timed_out_ = false;  // no answer from the service in time: a 504 is owed
  bool head_timed_out_ = false;      // the head did not come in time: a 408 is owed
  std::optional<clock::time_point> timed_out_at_;  ///< when the 504 or 408 was decided
  asio::cancellation_signal read_cancel_;          ///< ends the request pump's read
  clock::time_point last_activity_;
  net::event answered_;
  net::event response_done_;
  asio::steady_timer timer_;
};

}  // namespace

asio::awaitable<void> serve_public_http(server& srv, net::tcp::socket stream, std::string scheme,
                                        public_peer from, std::optional<pinned_public> pinned) {
  auto session = std::make_shared<public_http_session<net::tcp::socket>>(
      srv, std::make_unique<net::tcp::socket>(std::move(stream)), std::move(scheme),
      std::move(from), false, std::move(pinned));
  auto& serving = *session;
  return serving.run(std::move(session));
}

asio::awaitable<void> serve_public_http(server& srv, std::unique_ptr<net::tls_stream> stream,
                                        std::string scheme, public_peer from, bool relayed,
                                        std::optional<pinned_public> pinned) {
  auto session = std::make_shared<public_http_session<net::tls_stream>>(
      srv, std::move(stream), std::move(scheme), std::move(from), relayed, std::move(pinned));
  auto& serving = *session;
  return serving.run(std::move(session));
}

}  // namespace porthole::server
