#include "client/local_h2.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>
#include <optional>

#include "http/ascii.h"
#include "http/forwarding.h"
#include "http/h2_mapping.h"
#include "http/h2_outgoing.h"
#include "http/message_parser.h"
#include "net/dialer.h"
#include "net/event.h"
#include "net/running_guard.h"
#include "net/spawn.h"

namespace porthole::client {
namespace {

namespace asio = net::asio;
using clock = std::chrono::steady_clock;
using net::error_code;

// What the local service may send on a stream (and on the connection)
// before the tunnel has taken it: its receive windows.
constexpr std::int32_t stream_window = 256 * 1024;
constexpr std::int32_t connection_window = 1024 * 1024;
// A request's body held for the local service; reading the tunnel pauses
// above it (the tunnel's window then holds the public client back).
constexpr std::size_t request_buffer_limit = 256 * 1024;
constexpr std::size_t read_size = 16 * 1024;
constexpr std::size_t write_batch = 64 * 1024;

// One request and its response, in flight on the HTTP/2 connection.
struct exchange final : http::body_sink {
  std::int32_t id = -1;
  bool head_request = false;

  exchange() {
    request.on_taken = [this] { drained.notify(); };
  }
  exchange(const exchange&) = delete;
  exchange& operator=(const exchange&) = delete;

  http::h2_outgoing_body request;  ///< its body (decoded) and trailers, for nghttp2
  net::event drained;              ///< nghttp2 took some of the request's body

  // Response, as HTTP/1.1 bytes for the tunnel.
  unsigned status = 0;
  std::vector<http::field> fields;  ///< of the head (or trailers) being received
  bool final_head = false;          ///< the final response head has been received
  bool chunked = false;
  std::string to_tunnel;
  std::size_t unconsumed = 0;  ///< DATA bytes in to_tunnel not yet consumed
  bool response_ended = false;
  bool closed = false;  ///< nghttp2 closed the stream
  std::uint32_t close_code = 0;
  net::event wake;
  std::size_t unreported_head = 0;  ///< head bytes at the front of to_tunnel (told as heads)

  std::size_t pending_body() const { return request.pending(); }

  void body(std::string_view bytes) override {
    if (!closed) {
      request.bytes.append(bytes);
    }
  }
  void trailer(std::string_view name, std::string_view value) override {
    request.trailers.push_back({http::lower_case(name), std::string(value)});
  }
};

class h2_forwarder : public std::enable_shared_from_this<h2_forwarder> {
 public:
  h2_forwarder(net::channel& tunnel, local_http_target target, http_observer* observer,
               net::tcp::socket local)
      : tunnel_(tunnel),
        target_(std::move(target)),
        observer_(observer),
        local_(std::move(local)),
        requests_(http::forwarded_limits) {}

  ~h2_forwarder() {
    if (session_ != nullptr) {
      nghttp2_session_del(session_);
    }
  }

  bool start() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
      return false;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // A response's DATA is acknowledged only once written to the tunnel.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    const int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
      session_ = nullptr;
      return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(stream_window)},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, connection_window);
    return true;
  }

  asio::awaitable<local_http_totals> run(std::shared_ptr<h2_forwarder> self, std::string initial) {
    const auto ex = local_.get_executor();
    running_ += 2;
    net::spawn(ex, local_reader(self), "h2 upstream reads");
    net::spawn(ex, local_writer(self), "h2 upstream writes");
    std::string held = std::move(initial);
    bool tunnel_open = true;
    while (tunnel_open && !local_closed_ && !failed_) {
      std::size_t used = 0;
      const bool ok = take_requests(held, used);
      held.erase(0, used);
      if (!ok) {
        break;
      }
      if (body_owner_) {
        resume_request(*body_owner_);  // body bytes came for a stream nghttp2 deferred
      }
      if (body_owner_ && body_owner_->pending_body() >= request_buffer_limit &&
          !body_owner_->closed) {
        co_await body_owner_->drained.wait_until(clock::time_point::max());
        continue;
      }
      if (waiting_for_response_ && requests_.at_message_start()) {
        // The request is whole: its response is written before the next.
        co_await response_done_.wait_until(clock::time_point::max());
        continue;
      }
      co_await tunnel_.wait_readable();
      std::string chunk(read_size, '\0');
      auto [ec, n] = co_await tunnel_.read_some(asio::buffer(chunk));
      held.append(chunk.data(), n);
      if (ec) {
        tunnel_open = false;
        std::size_t rest = 0;
        take_requests(held, rest);
      }
    }
    // The request in flight gets its answer (the tunnel half-closed) unless
    // a side failed.
    while (current_ && !local_closed_ && !failed_) {
      co_await response_done_.wait_until(clock::time_point::max());
    }
    done_ = true;
    if (session_ != nullptr && !local_closed_) {
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    }
    write_wake_.notify();
    const auto give_up = clock::now() + std::chrono::seconds(2);
    while (!writer_done_ && clock::now() < give_up) {
      co_await ended_.wait_until(give_up);
    }
    net::error_code ignored;
    local_.shutdown(net::tcp::socket::shutdown_both, ignored);
    local_.close(ignored);
    while (running_ > 0) {
      co_await ended_.wait_until(clock::time_point::max());
    }
    co_return totals_;
  }

 private:
  // Parses what the tunnel sent: starts a request at each head, gives body
  // bytes to the current one. False when the tunnel must end.
  bool take_requests(std::string_view input, std::size_t& used) {
    while (used < input.size()) {
      if (waiting_for_response_ && requests_.at_message_start()) {
        return true;  // the next request waits for this one's response
      }
      const http::parse_result r = requests_.parse(input.substr(used));
      if (r.error) {
        spdlog::warn("{}: request on the tunnel is not valid HTTP: {}", target_.url,
                     r.error.message());
        failed_ = true;
        return false;
      }
      if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
        return true;
      }
      const std::string_view bytes = input.substr(used, r.consumed);
      used += r.consumed;
      if (r.head_complete) {
        if (!begin_request(requests_.head(), r.message_complete)) {
          return false;
        }
        if (observer_ != nullptr) {
          observer_->request_head(requests_.head());
        }
      } else if (observer_ != nullptr && !bytes.empty()) {
        observer_->request_body(bytes);
      }
      if (r.message_complete && body_owner_) {
        body_owner_->request.ended = true;
        if (observer_ != nullptr) {
          observer_->request_end();
        }
        resume_request(*body_owner_);
        requests_.decode_into(nullptr);
        body_owner_.reset();
      }
    }
    return true;
  }

  bool begin_request(const http::request_head& h, bool complete) {
    if (h.upgrade || h.method == "CONNECT") {
      spdlog::warn("{}: {} with an upgrade cannot go to an HTTP/2 upstream", target_.url,
                   h.method);
      fail_with_page(501, "Not Implemented",
                     "This tunnel's local service speaks HTTP/2 (upstream http2): upgrades and "
                     "CONNECT cannot reach it.");
      return false;
    }
    auto ex = std::make_shared<exchange>();
    ex->head_request = h.method == "HEAD";
    requests_.decode_into(nullptr);
    http::h2_header_list nva;
    const std::string authority(h.find("host").value_or(""));
    nva.add(":method", h.method);
    nva.add(":scheme", "http");
    nva.add(":authority", authority);
    nva.add(":path", h.target);
    std::vector<std::string_view> named;  // fields the Connection field names
    for (const http::field& f : h.fields) {
      if (http::iequals(f.name, "connection")) {
        std::string_view options = f.value;
        while (!options.empty()) {
          const std::size_t comma = options.find(',');
          named.push_back(http::trim_ows(options.substr(0, comma)));
          if (comma == std::string_view::npos) {
            break;
          }
          options.remove_prefix(comma + 1);
        }
      }
    }
    std::vector<std::string> names;
    names.reserve(h.fields.size());
    for (const http::field& f : h.fields) {
      names.push_back(http::lower_case(f.name));
    }
    for (std::size_t i = 0; i < h.fields.size(); ++i) {
      const std::string& name = names[i];
      const http::field& f = h.fields[i];
      if (name == "host" || http::is_connection_specific(name)) {
        continue;
      }
      if (name == "te") {
        if (http::iequals(http::trim_ows(f.value), "trailers")) {
          nva.add("te", "trailers");
        }
        continue;
      }
      bool hop = false;
      for (std::string_view n : named) {
        hop = hop || http::iequals(n, name);
      }
      if (!hop) {
        nva.add(name, f.value);
      }
    }
    nghttp2_data_provider body = ex->request.provider();
    const std::int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                                   complete ? nullptr : &body, nullptr);
    if (id < 0) {
      spdlog::warn("{}: cannot send the request to the HTTP/2 upstream: {}", target_.url,
                   nghttp2_strerror(id));
      fail_with_page(502, "Bad Gateway", "porthole could not send the request to the local service.");
      return false;
    }
    ex->id = id;
    ex->request.stream_id = id;
    requests_.decode_into(ex.get());
    body_owner_ = ex;
    current_ = ex;
    waiting_for_response_ = true;
    ++totals_.requests;
    running_ += 1;
    net::spawn(local_.get_executor(), response_pump(shared_from_this(), ex), "h2 upstream response");
    write_wake_.notify();
    return true;
  }

  void resume_request(exchange& ex) {
    if (!ex.closed && ex.request.resume(session_)) {
      write_wake_.notify();
    }
  }

  // ---- responses: nghttp2 callbacks ----

  static h2_forwarder& self_of(void* p) { return *static_cast<h2_forwarder*>(p); }

  exchange* find(std::int32_t id) {
    return current_ && current_->id == id ? current_.get() : nullptr;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user_data) {
    exchange* ex = self_of(user_data).find(frame->hd.stream_id);
    if (ex == nullptr || frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      unsigned status = 0;
      for (char c : v) {
        status = c >= '0' && c <= '9' ? status * 10 + static_cast<unsigned>(c - '0') : 1000;
      }
      ex->status = status;
    } else if (!n.empty() && n[0] != ':') {
      ex->fields.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto& self = self_of(user_data);
    exchange* ex = self.find(frame->hd.stream_id);
    if (ex == nullptr) {
      return 0;
    }
    const bool ends = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (!ex->final_head) {
        self.head_to_tunnel(*ex, ends);
      } else if (ends) {
        // Trailers: in the chunked body's trailer section.
        if (ex->chunked) {
          http::append_last_chunk(ex->to_tunnel, ex->fields);
        }
        ex->fields.clear();
        ex->response_ended = true;
      }
    } else if (frame->hd.type == NGHTTP2_DATA && ends) {
      if (ex->chunked) {
        http::append_last_chunk(ex->to_tunnel, {});
      }
      ex->response_ended = true;
    }
    ex->wake.notify();
    return 0;
  }

  // The head of a response, as HTTP/1.1.
  void head_to_tunnel(exchange& ex, bool ends_stream) {
    const unsigned status = ex.status;
    if (status < 100 || status > 999) {
      ex.fields.clear();
      return;
    }
    http::response_head h;
    h.status = status;
    h.reason = std::string(boost::beast::http::obsolete_reason(
        static_cast<boost::beast::http::status>(status)));
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + h.reason + "\r\n";
    bool has_length = false;
    for (const http::field& f : ex.fields) {
      has_length = has_length || f.name == "content-length";
      out += f.name;
      out += ": ";
      out += f.value;
      out += "\r\n";
    }
    const bool interim = status < 200;
    if (!interim) {
      ex.final_head = true;
      const bool bodiless = ex.head_request || status == 204 || status == 304;
      if (ends_stream) {
        if (!has_length && !bodiless) {
          out += "Content-Length: 0\r\n";
          ex.fields.push_back({"Content-Length", "0"});
        }
        ex.response_ended = true;
      } else if (!has_length && !bodiless) {
        ex.chunked = true;
        out += "Transfer-Encoding: chunked\r\n";
        ex.fields.push_back({"Transfer-Encoding", "chunked"});
      }
    }
    out += "\r\n";
    ex.to_tunnel += out;
    ex.unreported_head += out.size();
    h.fields = std::move(ex.fields);
    ex.fields.clear();
    if (observer_ != nullptr) {
      observer_->response_head(h);
      if (interim) {
        observer_->response_end();
      }
    }
  }

  static int on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                const std::uint8_t* data, std::size_t len, void* user_data) {
    exchange* ex = self_of(user_data).find(stream_id);
    if (ex == nullptr || !ex->final_head || ex->head_request) {
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    const std::string_view bytes(reinterpret_cast<const char*>(data), len);
    if (ex->chunked) {
      http::append_chunk(ex->to_tunnel, bytes);
    } else {
      ex->to_tunnel.append(bytes);
    }
    ex->unconsumed += len;
    ex->wake.notify();
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                             void* user_data) {
    exchange* ex = self_of(user_data).find(stream_id);
    if (ex != nullptr) {
      ex->closed = true;
      ex->close_code = error_code;
      ex->wake.notify();
      ex->drained.notify();
    }
    return 0;
  }

  // Writes the current exchange's response to the tunnel as it comes,
  // giving the window back once written.
  asio::awaitable<void> response_pump([[maybe_unused]] std::shared_ptr<h2_forwarder> self,
                                      std::shared_ptr<exchange> ex) {
    const net::running_guard counted(running_, ended_);
    bool wrote_head = false;
    for (;;) {
      while (ex->to_tunnel.empty() && !ex->response_ended && !ex->closed && !local_closed_) {
        co_await ex->wake.wait_until(clock::time_point::max());
      }
      if (!ex->to_tunnel.empty()) {
        const std::string batch = std::exchange(ex->to_tunnel, {});
        const std::size_t consumed = std::exchange(ex->unconsumed, 0);
        if (observer_ != nullptr) {
          observe_response(*ex, batch);
        }
        wrote_head = wrote_head || ex->final_head;
        const error_code ec = co_await tunnel_.write(asio::buffer(batch));
        if (consumed > 0 && !local_closed_) {
          nghttp2_session_consume(session_, ex->id, consumed);
          write_wake_.notify();
        }
        if (ec) {
          failed_ = true;
          break;
        }
        continue;
      }
      if (ex->response_ended) {
        if (observer_ != nullptr) {
          observer_->response_end();
        }
        break;
      }
      // The stream closed (reset) or the connection went before the end.
      if (!wrote_head && !ex->final_head) {
        spdlog::warn("{}: the local service ended the request without an answer{}", target_.url,
                     ex->close_code != 0
                         ? std::string(" (") + nghttp2_http2_strerror(ex->close_code) + ")"
                         : std::string());
        const std::string page = http::error_response(
            502, "Bad Gateway",
            "The local service (HTTP/2) closed the request without an answer.", false);
        co_await tunnel_.write(asio::buffer(page));
      } else if (observer_ != nullptr) {
        observer_->lost_track("the local service reset the HTTP/2 stream");
      }
      failed_ = true;
      tunnel_.close();
      break;
    }
    if (current_ == ex) {
      current_.reset();
      waiting_for_response_ = false;
    }
    response_done_.notify();
    ex->drained.notify();
  }

  // Tells the observer the body bytes of `batch` (its heads were told as
  // they came).
  void observe_response(exchange& ex, std::string_view batch) {
    const std::size_t skip = std::min(batch.size(), ex.unreported_head);
    ex.unreported_head -= skip;
    if (skip < batch.size()) {
      observer_->response_body(batch.substr(skip));
    }
  }

  void fail_with_page(unsigned status, std::string_view reason, std::string_view message) {
    failed_ = true;
    page_ = http::error_response(status, reason, message, false);
  }

  // ---- the local connection ----

  asio::awaitable<void> local_reader([[maybe_unused]] std::shared_ptr<h2_forwarder> self) {
    const net::running_guard counted(running_, ended_);
    std::string buf(read_size, '\0');
    while (!done_) {
      auto [ec, n] = co_await local_.async_read_some(asio::buffer(buf), net::use_nothrow);
      if (n > 0) {
        const auto rv = nghttp2_session_mem_recv(
            session_, reinterpret_cast<const std::uint8_t*>(buf.data()), n);
        if (rv < 0) {
          spdlog::warn("{}: the local service broke HTTP/2: {}", target_.url,
                       nghttp2_strerror(static_cast<int>(rv)));
          ec = asio::error::invalid_argument;
        }
        write_wake_.notify();
      }
      if (ec) {
        break;
      }
    }
    local_closed_ = true;
    if (current_) {
      current_->wake.notify();
      current_->drained.notify();
    }
    response_done_.notify();
    write_wake_.notify();
  }

  asio::awaitable<void> local_writer([[maybe_unused]] std::shared_ptr<h2_forwarder> self) {
    const net::running_guard counted(running_, ended_);
    std::string out;
    for (;;) {
      out.clear();
      if (!local_closed_) {
        http::take_output(session_, out, write_batch);
      }
      if (!out.empty()) {
        auto [ec, n] = co_await asio::async_write(local_, asio::buffer(out), net::use_nothrow);
        if (ec) {
          break;
        }
        continue;
      }
      if (done_ || local_closed_) {
        break;
      }
      co_await write_wake_.wait_until(clock::time_point::max());
    }
    writer_done_ = true;
  }

 public:
  std::string page_;  ///< a page for the public client when the forwarder failed early

 private:
  net::channel& tunnel_;
  local_http_target target_;
  http_observer* observer_;
  net::tcp::socket local_;
  http::request_parser requests_;
  nghttp2_session* session_ = nullptr;
  std::shared_ptr<exchange> current_;     ///< whose response is being written
  std::shared_ptr<exchange> body_owner_;  ///< whose request body is being read
  bool waiting_for_response_ = false;
  bool local_closed_ = false;
  bool failed_ = false;
  bool done_ = false;
  bool writer_done_ = false;
  int running_ = 0;
  net::event response_done_;
  net::event write_wake_;
  net::event ended_;
  local_http_totals totals_;
};

}  // namespace

asio::awaitable<local_http_totals> forward_h2(net::channel& tunnel, local_http_target target,
                                              std::string initial, http_observer* observer) {
  const std::string addr = target.host + ":" + target.port;
  auto [ec, sock, failure] =
      co_await net::dial(target.host, target.port, std::nullopt, target.dial_timeout);
  if (ec) {
    spdlog::warn("{}: cannot reach the local service at {}: {}", target.url, addr, failure);
    const std::string page = http::error_response(
        502, "Bad Gateway", "porthole could not reach the local service at " + addr + ": " + failure,
        false);
    co_await tunnel.write(asio::buffer(page));
    co_return local_http_totals{};
  }
  auto forwarder = std::make_shared<h2_forwarder>(tunnel, std::move(target), observer,
                                                  std::move(sock));
  if (!forwarder->start()) {
    co_return local_http_totals{};
  }
  auto& running = *forwarder;
  // (Named first: temporaries in a co_await expression trip g++ 12.)
  auto serving = running.run(forwarder, std::move(initial));
  local_http_totals totals = co_await std::move(serving);
  if (!running.page_.empty()) {
    co_await tunnel.write(asio::buffer(running.page_));
  }
  totals.dials = 1;
  co_return totals;
}

}  // namespace porthole::client
