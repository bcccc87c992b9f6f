#include "server/public_h2.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/write.hpp>
#include <map>
#include <type_traits>

#include "http/error.h"
#include "http/forwarding.h"
#include "http/h2_mapping.h"
#include "http/h2_outgoing.h"
#include "http/message_parser.h"
#include "http/request_rules.h"
#include "log/event.h"
#include "net/channel.h"
#include "net/event.h"
#include "net/running_guard.h"
#include "net/spawn.h"
#include "server/control_session.h"
#include "server/edge_decision.h"
#include "server/node_link.h"
#include "server/server.h"

namespace porthole::server {

namespace asio = net::asio;
using clock = std::chrono::steady_clock;

bool starts_h2_preface(std::string_view bytes) {
  constexpr std::string_view preface = "PRI * HTTP/2.0\r\n";
  return bytes.size() >= preface.size() && bytes.substr(0, preface.size()) == preface;
}

namespace {

// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
constexpr std::uint32_t max_streams = 100;
// What a client may send on a stream before portholed has written it to the
// tunnel (the stream's receive window), and on all streams together (the
// connection's): what one connection can make portholed hold of requests.
constexpr std::int32_t stream_window = 256 * 1024;
constexpr std::int32_t connection_window = 1024 * 1024;
// A response's body held for a client that does not read: reading from the
// tunnel stops above this (the tunnel's own window then stops the client).
constexpr std::size_t response_buffer_limit = 64 * 1024;
// Each stream's window on the client's multiplexed connection (a client that
// negotiated "stream_windows"): what the tunnel may push for a stream whose
// public reader stalls, at most max_streams times per connection.
constexpr std::uint32_t tunnel_stream_window = 128 * 1024;
// Bytes taken from nghttp2 per write to the public side.
constexpr std::size_t write_batch = 64 * 1024;
constexpr std::size_t read_size = 16 * 1024;

// One HTTP/2 stream: its request as it arrives, the bytes owed to the
// tunnel, and the response's body owed to the client.
struct h2_stream final : http::body_sink {
  explicit h2_stream(std::int32_t stream_id) : id(stream_id), begun(clock::now()) {
    response.stream_id = stream_id;
    response.on_taken = [this] { drained.notify(); };
  }
  h2_stream(const h2_stream&) = delete;
  h2_stream& operator=(const h2_stream&) = delete;

  std::int32_t id;
  clock::time_point begun;  ///< when its HEADERS began
  http::h2_request request;
  std::size_t header_bytes = 0;
  bool too_large = false;    ///< the head broke the size or count limit: 431
  bool head_done = false;    ///< the request's HEADERS frame is whole
  bool request_ended = false;  ///< END_STREAM came from the client
  http::h1_body framing = http::h1_body::none;
  std::vector<http::field> request_trailers;

  // Request body, in HTTP/1.1 framing, not yet written to the tunnel; the
  // DATA bytes in it are not yet consumed (their window not given back).
  std::string to_tunnel;
  std::size_t unconsumed = 0;
  bool to_tunnel_done = false;  ///< the body's end is in to_tunnel
  net::event request_wake;

  std::unique_ptr<net::channel> channel;
  bool forwarded = false;
  clock::time_point forwarded_at;

  // Response side.
  http::response_parser parser{http::parser_limits{64 * 1024}};
  bool response_submitted = false;  ///< the final response's HEADERS are submitted
  http::h2_outgoing_body response;  ///< its body and trailers, for nghttp2
  net::event drained;               ///< nghttp2 took some of the response's body
  bool timed_out = false;

  bool closed = false;  ///< nghttp2 closed the stream (finished, or reset)
  std::uint32_t close_code = 0;

  std::size_t body_pending() const { return response.pending(); }

  void body(std::string_view bytes) override { response.bytes.append(bytes); }
  void trailer(std::string_view name, std::string_view value) override {
    response.trailers.push_back({http::lower_case(name), std::string(value)});
  }
};

template <class Stream>
class public_h2_session : public std::enable_shared_from_this<public_h2_session<Stream>> {
 public:
  public_h2_session(server& srv, std::unique_ptr<Stream> stream, std::string scheme,
                    public_peer from, std::optional<pinned_public> pinned)
      : pinned_(std::move(pinned)),
        counters_(pinned_ ? pinned_->counters : srv.shared_counters()),
        server_(srv),
        cfg_(srv.config()),
        stream_(std::move(stream)),
        public_(*stream_),
        scheme_(std::move(scheme)),
        protocol_(scheme_ == "https" ? public_protocol::https : public_protocol::http),
        client_ip_(std::move(from.ip)),
        client_addr_(std::move(from.addr)),
        watchdog_(public_.get_executor()) {}

  ~public_h2_session() {
    if (session_ != nullptr) {
      nghttp2_session_del(session_);
    }
  }

  asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<public_h2_session> self,
                            std::string already_read) {
    if (!start_session()) {
      net::close_stream(public_);
      co_return;
    }
    touch();
    start(writer(self), "public h2 writes");
    start(watchdog(self), "public h2 time-outs");
    bool ok = feed(already_read);
    std::string buf;
    while (ok && !closing_ && (nghttp2_session_want_read(session_) != 0 ||
                               nghttp2_session_want_write(session_) != 0)) {
      wake_writer();
      buf.resize(read_size);
      auto [ec, n] = co_await public_.async_read_some(asio::buffer(buf), net::use_nothrow);
      counters_->in(protocol_) += n;
      if (n > 0) {
        touch();
        ok = feed(std::string_view(buf.data(), n));
      }
      if (ec) {
        break;
      }
    }
    // What nghttp2 still has to say (a GOAWAY) goes out, then everything ends.
    closing_ = true;
    wake_writer();
    const auto give_up = clock::now() + std::chrono::seconds(2);
    while (!writer_done_ && clock::now() < give_up) {
      co_await ended_.wait_until(give_up);
    }
    net::close_stream(public_);
    for (auto& [id, st] : streams_) {
      st->closed = true;  // nothing of it may start now
      abort_stream(*st);
    }
    watchdog_.cancel();
    wake_writer();
    while (running_ > 0) {
      co_await ended_.wait_until(clock::time_point::max());
    }
  }

 private:
  bool start_session() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
      return false;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // A request's DATA is acknowledged (WINDOW_UPDATE) only once written to
    // the tunnel: a client cannot make portholed buffer more than its window.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    // The encoder's table stays small whatever table size the client allows.
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    const int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
      session_ = nullptr;
      return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(stream_window)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(cfg_.header_limit)},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, connection_window);
    return true;
  }

  // Hands received bytes to nghttp2; false if the connection must end.
  bool feed(std::string_view bytes) {
    if (bytes.empty()) {
      return true;
    }
    const auto rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (rv < 0) {
      log::info("public HTTP/2 connection ended on a protocol error",
                {{"peer", client_addr_}, {"error", nghttp2_strerror(static_cast<int>(rv))}});
      counters_->count(error_kind::bad_request);
      return false;
    }
    wake_writer();
    return true;
  }

  // ---- nghttp2 callbacks (on this connection's thread, inside feed()) ----

  static public_h2_session& self_of(void* user_data) {
    return *static_cast<public_h2_session*>(user_data);
  }

  h2_stream* find(std::int32_t id) {
    const auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto& self = self_of(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self.streams_.emplace(frame->hd.stream_id,
                            std::make_shared<h2_stream>(frame->hd.stream_id));
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user_data) {
    auto& self = self_of(user_data);
    h2_stream* st = self.find(frame->hd.stream_id);
    if (st == nullptr || st->too_large) {
      return 0;
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    // Counted as HPACK counts a field's size (RFC 7541 4.1).
    st->header_bytes += namelen + valuelen + 32;
    const std::size_t fields = st->request.fields.size() + st->request_trailers.size();
    if (st->header_bytes > self.cfg_.header_limit || fields >= self.cfg_.max_header_fields) {
      st->too_large = true;
      return 0;
    }
    if (st->head_done) {
      st->request_trailers.push_back({std::string(n), std::string(v)});
      return 0;
    }
    if (n == ":method") {
      st->request.method = v;
    } else if (n == ":scheme") {
      st->request.scheme = v;
    } else if (n == ":authority") {
      st->request.authority = v;
    } else if (n == ":path") {
      st->request.path = v;
    } else if (!n.empty() && n[0] != ':') {
      st->request.fields.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto& self = self_of(user_data);
    h2_stream* st = self.find(frame->hd.stream_id);
    if (st == nullptr) {
      return 0;
    }
    const bool ends = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !st->head_done) {
      st->head_done = true;
      st->request_ended = ends;
      st->framing = http::body_framing(st->request, ends);
      self.touch();
      self.start(self.serve_stream(self.shared_from_this(), self.streams_[st->id]),
                 "public h2 stream");
      return 0;
    }
    if (ends && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
      st->request_ended = true;
      self.end_request_body(*st);
    }
    return 0;
  }

  static int on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                const std::uint8_t* data, std::size_t len, void* user_data) {
    auto& self = self_of(user_data);
    h2_stream* st = self.find(stream_id);
    if (st == nullptr || st->closed || st->to_tunnel_done || (st->head_done && !st->forwarded &&
                                                              st->response_submitted)) {
      // Nobody reads it: its window is given back at once.
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    const std::string_view bytes(reinterpret_cast<const char*>(data), len);
    if (st->framing == http::h1_body::chunked) {
      http::append_chunk(st->to_tunnel, bytes);
    } else {
      st->to_tunnel.append(bytes);
    }
    st->unconsumed += len;
    st->request_wake.notify();
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                             void* user_data) {
    auto& self = self_of(user_data);
    const auto it = self.streams_.find(stream_id);
    if (it == self.streams_.end()) {
      return 0;
    }
    std::shared_ptr<h2_stream> st = std::move(it->second);
    self.streams_.erase(it);
    st->closed = true;
    st->close_code = error_code;
    if (error_code != NGHTTP2_NO_ERROR || !st->response.ended) {
      // Reset by the client (a cancelled call), or by portholed: the
      // exchange ends on the tunnel too.
      self.abort_stream(*st);
    }
    st->request_wake.notify();
    st->drained.notify();
    self.touch();
    return 0;
  }

  // The request's end, in its HTTP/1.1 framing, queued for the tunnel.
  void end_request_body(h2_stream& st) {
    if (st.to_tunnel_done) {
      return;
    }
    st.to_tunnel_done = true;
    if (st.framing == http::h1_body::chunked) {
      http::append_last_chunk(st.to_tunnel, st.request_trailers);
    }
    st.request_wake.notify();
  }

  void abort_stream(h2_stream& st) {
    if (st.channel) {
      st.channel->close();
    }
    st.request_wake.notify();
    st.drained.notify();
  }

  // ---- one stream ----

  // Runs `task` as one of the connection's coroutines (run() waits for them).
  void start(asio::awaitable<void> task, const char* what) {
    ++running_;
    net::spawn(public_.get_executor(), std::move(task), what);
  }

  asio::awaitable<void> serve_stream([[maybe_unused]] std::shared_ptr<public_h2_session> self,
                                     std::shared_ptr<h2_stream> st) {
    const net::running_guard counted(running_, ended_);
    // Started from inside nghttp2's callback: the stream's work begins
    // after it returns.
    co_await asio::post(public_.get_executor(), asio::use_awaitable);
    co_await route_and_answer(st);
    // The exchange is over: its tunnel stream with it.
    if (st->channel) {
      st->channel->close();
    }
    st->to_tunnel_done = true;
    st->request_wake.notify();
  }

  asio::awaitable<void> route_and_answer(std::shared_ptr<h2_stream> st) {
    if (st->too_large) {
      counters_->count(error_kind::bad_request);
      log::warn("public request refused; closing",
                {{"peer", client_addr_}, {"scheme", scheme_}, {"status", 431},
                 {"rule", "header_limit"}, {"protocol", "HTTP/2"}});
      answer_locally(*st, 431, "Request Header Fields Too Large",
                     "The request head is larger than this server accepts.");
      co_return;
    }
    const http::h2_request& r = st->request;
    request_facts facts;
    if (!r.authority.empty()) {
      facts.host = r.authority;
    } else {
      facts.host = r.find("host");
    }
    facts.authorization = r.find("authorization");
    const std::string host = request_host(facts);
    route to;
    if (pinned_) {
      to.local = pinned_->t;
    } else if (!host.empty()) {
      to = co_await settle_route(host);
    }
    if (st->closed) {
      co_return;
    }
    connection_facts conn;
    conn.scheme = scheme_;
    conn.client_ip = client_ip_;
    if (pinned_) {
      conn.pinned = pinned_->t.get();
      conn.pinned_usable = !pinned_->via.session->closed();
    }
    conn.stopping = server_.stopping();
    edge_decision d = decide(facts, route_facts{to.local.get(), to.remote.has_value(), to.held},
                             conn);
    std::unique_ptr<net::channel> relay;
    if (d.what == edge_decision::action::relay) {
      // The name's node takes this request on a connection of its own, as
      // HTTP/1.1, from which it forwards it (and adds the forwarding fields).
      relay_request req{host, scheme_, to.remote->revision, client_ip_, ""};
      auto opening = server_.open_relay(*to.remote, std::move(req));
      server::relay_result got = co_await std::move(opening);
      if (got.stream) {
        relay = std::make_unique<net::tls_channel>(std::move(got.stream));
      } else {
        log::warn("cannot hand a public request to the node that serves it",
                  {{"name", host}, {"node", to.remote->node_id}, {"error", got.error},
                   {"protocol", "HTTP/2"}});
        conn.relay_failed = true;
        d = decide(facts, route_facts{to.local.get(), to.remote.has_value(), to.held}, conn);
      }
    }
    if (relay) {
      // (Named first: temporaries in a co_await expression trip g++ 12.)
      auto forwarding = forward(st, std::move(relay), http::h1_request_head(r, st->framing));
      co_await std::move(forwarding);
      co_return;
    }
    switch (d.what) {
      case edge_decision::action::refuse:
        counters_->count(error_kind::bad_request);
        answer_locally(*st, 400, "Bad Request", "The request has no :authority and no host.");
        co_return;
      case edge_decision::action::close:
      case edge_decision::action::relay:  // handed on above
        // The node stops: the client sends it again on a new connection.
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        wake_writer();
        co_return;
      case edge_decision::action::answer:
        if (d.answer.counted) {
          counters_->count(*d.answer.counted);
        }
        answer_locally(*st, d.answer.status, d.answer.reason, d.answer.message,
                       d.answer.extra_fields);
        co_return;
      case edge_decision::action::forward:
        break;
    }
    const std::shared_ptr<tunnel> t = to.local;
    std::string head = http::add_forwarded_fields(http::h1_request_head(r, st->framing),
                                                  d.forwarded);
    if (!head_is_valid(*st, head)) {
      co_return;
    }
    if (!pinned_ && !slots_.contains(t.get())) {
      if (auto session = t->session.lock()) {
        auto slot = session->admit_public(client_addr_, t->url);
        if (!slot) {
          answer_locally(*st, 503, "Service Unavailable",
                         "Tunnel " + t->host +
                             " has as many open connections as its server allows; try again "
                             "later.");
          co_return;
        }
        slots_.emplace(t.get(), std::move(*slot));
      }
    }
    // (Each awaitable named first: temporaries in a co_await expression
    // trip g++ 12.)
    std::unique_ptr<net::channel> channel;
    if (pinned_) {
      auto opening = open_stream(pinned_->via, t->url, client_addr_, std::move(head), counters_,
                                 stream_extras{tunnel_stream_window, "HTTP/2"});
      channel = co_await std::move(opening);
    } else {
      auto opening = porthole::server::start_proxy(t, client_addr_, std::move(head),
                                                   clock::now() + cfg_.proxy_wait_timeout,
                                                   stream_extras{tunnel_stream_window, "HTTP/2"});
      channel = co_await std::move(opening);
    }
    if (!channel) {
      if (st->closed) {
        co_return;
      }
      counters_->count(error_kind::proxy_timeout);
      answer_locally(*st, 502, "Bad Gateway",
                     "Tunnel " + t->host +
                         " is not reachable: its client gave no connection in time.");
      co_return;
    }
    auto forwarding = forward(st, std::move(channel), {});
    co_await std::move(forwarding);
  }

  // False (and answered 400) if `head`, as HTTP/2 made it, breaks a rule of
  // HTTP/1.1 that any public head is held to.
  bool head_is_valid(h2_stream& st, std::string_view head) {
    const auto ec = http::check_request_head(head, cfg_.max_header_fields + 8);
    if (!ec) {
      return true;
    }
    counters_->count(error_kind::bad_request);
    log::warn("public request refused; closing",
              {{"peer", client_addr_}, {"scheme", scheme_}, {"status", http::status_of(ec)},
               {"rule", std::string(http::rule_name(ec))}, {"protocol", "HTTP/2"}});
    answer_locally(st, http::status_of(ec), "Bad Request",
                   "The request is not valid HTTP: " + ec.message() + ".");
    return false;
  }

  // Carries the stream's exchange over `channel`: `head` first unless it was
  // written with the channel's opening (empty), then the body as it comes,
  // and the response back.
  asio::awaitable<void> forward(std::shared_ptr<h2_stream> st,
                                std::unique_ptr<net::channel> channel, std::string head) {
    if (!head.empty()) {
      if (!head_is_valid(*st, head)) {
        channel->close();
        co_return;
      }
      const net::error_code ec = co_await channel->write(asio::buffer(head));
      if (ec) {
        channel->close();
        answer_locally(*st, 502, "Bad Gateway",
                       "The node of this server that serves the tunnel closed the connection.");
        co_return;
      }
    }
    if (st->closed) {
      channel->close();
      co_return;
    }
    st->channel = std::move(channel);
    st->forwarded = true;
    st->forwarded_at = clock::now();
    st->parser.decode_into(st.get());
    st->parser.expect(st->request.method);
    if (st->request_ended) {
      end_request_body(*st);
    }
    start(request_pump(this->shared_from_this(), st), "public h2 request body");
    co_await response_pump(st);
  }

  // Asks the directory, waiting a moment where the name is about to change
  // (as HTTP/1.1 does; see public_http.cpp).
  asio::awaitable<route> settle_route(const std::string& host) {
    route to = server_.find_route(scheme_, host);
    if (server_.stopping() && !to.local) {
      co_return to;
    }
    asio::steady_timer pause(public_.get_executor());
    const auto give_up = clock::now() + std::chrono::seconds(5);
    while ((to.moving || (!to.local && !to.remote && !to.held && server_.names_catching_up())) &&
           clock::now() < give_up && !closing_) {
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_nothrow);
      to = server_.find_route(scheme_, host);
    }
    co_return to;
  }

  // Writes the request's body to the tunnel as it arrives, giving its window
  // back only once written.
  asio::awaitable<void> request_pump([[maybe_unused]] std::shared_ptr<public_h2_session> self,
                                     std::shared_ptr<h2_stream> st) {
    const net::running_guard counted(running_, ended_);
    for (;;) {
      while (st->to_tunnel.empty() && !st->closed && !(st->to_tunnel_done)) {
        co_await st->request_wake.wait_until(clock::time_point::max());
      }
      if (st->to_tunnel.empty()) {
        break;
      }
      const std::string batch = std::exchange(st->to_tunnel, {});
      const std::size_t consumed = std::exchange(st->unconsumed, 0);
      const net::error_code ec = co_await st->channel->write(asio::buffer(batch));
      if (consumed > 0) {
        nghttp2_session_consume(session_, st->id, consumed);
        wake_writer();
      }
      if (ec) {
        break;
      }
    }
    give_back(*st);
  }

  // The window of request bytes that will not be written to the tunnel.
  void give_back(h2_stream& st) {
    st.to_tunnel.clear();
    if (st.unconsumed > 0 && !closing_) {
      nghttp2_session_consume(session_, st.id, std::exchange(st.unconsumed, 0));
      wake_writer();
    }
  }

  // Reads the service's HTTP/1.1 response from the tunnel and gives it to
  // the client as HTTP/2: 1xx, then the final head, the body and trailers.
  asio::awaitable<void> response_pump(std::shared_ptr<h2_stream> st) {
    boost::beast::flat_buffer rbuf;
    for (;;) {
      while (st->body_pending() >= response_buffer_limit && !st->closed) {
        co_await st->drained.wait_until(clock::time_point::max());
      }
      if (st->closed) {
        co_return;
      }
      auto [ec, n] = co_await st->channel->read_some(rbuf.prepare(read_size));
      rbuf.commit(n);
      if (n > 0) {
        const auto d = rbuf.data();
        const std::string_view bytes(static_cast<const char*>(d.data()), d.size());
        const std::size_t used = take_response(*st, bytes);
        rbuf.consume(used);
        if (st->response.ended || st->closed) {
          co_return;
        }
      }
      if (ec) {
        if (st->closed) {
          co_return;
        }
        if (st->response_submitted && st->parser.body_until_close()) {
          st->response.ended = true;  // EOF ends this body
          resume(*st);
        } else if (!st->response_submitted) {
          if (st->timed_out) {
            counters_->count(error_kind::response_timeout);
            answer_locally(*st, 504, "Gateway Timeout",
                           "The local service sent no answer within " +
                               std::to_string(cfg_.response_timeout.count()) + "s.");
          } else {
            answer_locally(*st, 502, "Bad Gateway",
                           "The tunnel's client closed the connection without an answer.");
          }
        } else {
          // Cut off in the middle of its body: so is the client's stream.
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
          wake_writer();
        }
        co_return;
      }
    }
  }

  // Parses what the tunnel sent and submits it; the bytes used.
  std::size_t take_response(h2_stream& st, std::string_view bytes) {
    std::size_t used = 0;
    while (used < bytes.size() && !st.response.ended) {
      const http::parse_result r = st.parser.parse(bytes.substr(used));
      if (r.error) {
        counters_->count(error_kind::bad_response);
        log::warn("the local service's response is not valid HTTP; closing",
                  {{"error", r.error.message()}, {"protocol", "HTTP/2"}});
        if (!st.response_submitted) {
          answer_locally(st, 502, "Bad Gateway",
                         "The local service's response is not valid HTTP.");
        } else {
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_INTERNAL_ERROR);
          wake_writer();
        }
        st.response.ended = true;
        return bytes.size();
      }
      if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
        break;
      }
      used += r.consumed;
      if (r.head_complete) {
        const http::response_head& h = st.parser.head();
        if (h.status < 200) {
          if (h.status != 101) {
            submit_head(st, h, false);  // interim (100 Continue, 103 Early Hints)
          }
          continue;
        }
        submit_head(st, h, !r.message_complete);
      }
      if (r.message_complete && st.response_submitted) {
        st.response.ended = true;
      }
    }
    resume(st);
    return used;
  }

  void submit_head(h2_stream& st, const http::response_head& h, bool body_follows) {
    const std::string status = std::to_string(h.status);
    const std::vector<http::field> fields = http::h2_response_fields(h);
    http::h2_header_list nva;
    nva.add(":status", status);
    for (const http::field& f : fields) {
      // END_STREAM says there is no body: a zero length would only show up
      // among a gRPC trailers-only response's metadata.
      if (!body_follows && f.name == "content-length" && f.value == "0") {
        continue;
      }
      nva.add(f.name, f.value);
    }
    if (h.status < 200) {
      nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, st.id, nullptr, nva.data(), nva.size(),
                             nullptr);
    } else {
      st.response_submitted = true;
      nghttp2_data_provider body = st.response.provider();
      nghttp2_submit_response(session_, st.id, nva.data(), nva.size(),
                              body_follows ? &body : nullptr);
    }
    wake_writer();
  }

  // A page the edge answers with itself, through the same path as a
  // service's response.
  void answer_locally(h2_stream& st, unsigned status, std::string_view reason,
                      std::string_view message, std::string_view extra_fields = {}) {
    if (st.closed || st.response_submitted) {
      return;
    }
    log::debug("error response", {{"ip", client_ip_}, {"status", status}, {"protocol", "HTTP/2"}});
    give_back(st);  // a body that will not be forwarded
    const std::string response = http::error_response(status, reason, message, true, extra_fields);
    http::response_parser local{http::parser_limits{64 * 1024}};
    st.parser = std::move(local);
    st.parser.decode_into(&st);
    st.parser.expect("GET");
    st.response.bytes.clear();
    st.response.sent = 0;
    take_response(st, response);
  }

  void resume(h2_stream& st) {
    if (!st.closed && st.response.resume(session_)) {
      wake_writer();
    }
  }

  // ---- the public side ----

  void wake_writer() { write_wake_.notify(); }

  asio::awaitable<void> writer([[maybe_unused]] std::shared_ptr<public_h2_session> self) {
    const net::running_guard counted(running_, ended_);
    std::string out;
    for (;;) {
      out.clear();
      if (!http::take_output(session_, out, write_batch)) {
        closing_ = true;
      }
      if (!out.empty()) {
        auto [ec, n] = co_await asio::async_write(public_, asio::buffer(out), net::use_nothrow);
        counters_->out(protocol_) += n;
        if (ec) {
          closing_ = true;
          net::close_stream(public_);
          break;
        }
        continue;
      }
      if (closing_ || (nghttp2_session_want_read(session_) == 0 &&
                       nghttp2_session_want_write(session_) == 0)) {
        // Nothing more to say: the reader's read ends with the socket.
        net::lowest_socket(public_).shutdown(net::tcp::socket::shutdown_receive, ignored_);
        break;
      }
      co_await write_wake_.wait_until(clock::time_point::max());
    }
    writer_done_ = true;
  }

  // Ends idle connections, streams whose service does not answer in time,
  // and connections of a server that stops.
  asio::awaitable<void> watchdog([[maybe_unused]] std::shared_ptr<public_h2_session> self) {
    const net::running_guard counted(running_, ended_);
    while (!closing_) {
      watchdog_.expires_after(std::chrono::seconds(1));
      auto [ec] = co_await watchdog_.async_wait(net::use_nothrow);
      if (ec || closing_) {
        break;
      }
      const auto now = clock::now();
      bool slow_head = false;
      for (auto& [id, st] : streams_) {
        slow_head = slow_head || (!st->head_done && now - st->begun >= cfg_.read_header_timeout);
        if (st->forwarded && !st->response_submitted && !st->timed_out &&
            now - st->forwarded_at >= cfg_.response_timeout) {
          st->timed_out = true;
          log::info("no answer from the local service in time; 504",
                    {{"timeout", seconds_text(cfg_.response_timeout)}, {"protocol", "HTTP/2"}});
          st->channel->close();
        }
      }
      if (slow_head) {
        // A head cut in the middle of its CONTINUATION frames holds the
        // whole connection's header state: the connection goes.
        counters_->count(error_kind::header_timeout);
        log::warn("public request head not complete in time; closing",
                  {{"peer", client_addr_}, {"scheme", scheme_},
                   {"timeout", seconds_text(cfg_.read_header_timeout)}, {"protocol", "HTTP/2"}});
        nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
        closing_ = true;
        goaway_sent_ = true;
        wake_writer();
        break;
      }
      const bool idle = streams_.empty() && now - last_activity_ >= cfg_.http_idle_timeout;
      if ((idle || server_.stopping()) && !goaway_sent_) {
        // GOAWAY: streams begun go on; the client opens no new one here.
        goaway_sent_ = true;
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                              nullptr, 0);
        wake_writer();
      }
      if (goaway_sent_ && streams_.empty()) {
        closing_ = true;
        wake_writer();
      }
    }
  }

  void touch() { last_activity_ = clock::now(); }

  std::optional<pinned_public> pinned_;
  std::shared_ptr<metrics> counters_;
  server& server_;
  const server_config& cfg_;
  std::unique_ptr<Stream> stream_;
  Stream& public_;
  std::string scheme_;
  public_protocol protocol_;
  std::string client_ip_;
  std::string client_addr_;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, std::shared_ptr<h2_stream>> streams_;
  std::map<const tunnel*, public_conn_slot> slots_;  ///< this connection, counted per tunnel
  bool closing_ = false;
  bool goaway_sent_ = false;
  bool writer_done_ = false;
  int running_ = 0;  ///< coroutines of this connection (writer, watchdog, streams, pumps)
  net::event ended_;
  net::event write_wake_;
  asio::steady_timer watchdog_;
  clock::time_point last_activity_;
  net::error_code ignored_;
};

}  // namespace

asio::awaitable<void> serve_public_h2(server& srv, std::unique_ptr<net::tcp::socket> stream,
                                      std::string scheme, public_peer from,
                                      std::string already_read,
                                      std::optional<pinned_public> pinned) {
  auto session = std::make_shared<public_h2_session<net::tcp::socket>>(
      srv, std::move(stream), std::move(scheme), std::move(from), std::move(pinned));
  auto& serving = *session;
  return serving.run(std::move(session), std::move(already_read));
}

asio::awaitable<void> serve_public_h2(server& srv, std::unique_ptr<net::tls_stream> stream,
                                      std::string scheme, public_peer from,
                                      std::string already_read,
                                      std::optional<pinned_public> pinned) {
  auto session = std::make_shared<public_h2_session<net::tls_stream>>(
      srv, std::move(stream), std::move(scheme), std::move(from), std::move(pinned));
  auto& serving = *session;
  return serving.run(std::move(session), std::move(already_read));
}

}  // namespace porthole::server
