#include "mux/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <cstring>

#include "proto/error.h"

namespace porthole::mux {

namespace asio = net::asio;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t read_chunk = 256 * 1024;
}  // namespace

// ---- session ----

session::session(std::unique_ptr<net::tls_stream> conn, role r, std::string initial, options o)
    : conn_(std::move(conn)), role_(r), opts_(o), rbuf_(std::move(initial)) {}

session::~session() {
  close();
}

asio::awaitable<void> session::run() {
  auto self = shared_from_this();
  co_await (read_loop() || write_loop());
  close();
}

void session::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (conn_) {
    net::close_stream(*conn_);
  }
  auto streams = std::move(streams_);
  streams_.clear();
  open_streams_.store(0, std::memory_order_relaxed);
  for (auto& [id, s] : streams) {
    s->fail();
  }
  out_ready_.notify();
  out_drained_.notify();
}

std::unique_ptr<stream> session::open(const proto::start_proxy& info, std::uint32_t window) {
  const std::uint32_t id = next_id_;
  next_id_ += 1;
  std::uint8_t exponent = 0;
  if (opts_.stream_windows && window != 0 && window != opts_.window) {
    exponent = min_window_exponent;
    while (exponent < max_window_exponent && (std::uint32_t{1} << exponent) < window) {
      ++exponent;
    }
    window = std::uint32_t{1} << exponent;
  } else {
    window = opts_.window;
  }
  std::unique_ptr<stream> s(new stream(shared_from_this(), id, window));
  if (closed_) {
    s->fail();
    return s;
  }
  streams_[id] = s.get();
  open_streams_.store(streams_.size(), std::memory_order_relaxed);
  if (!closed_ && !opts_.stream_windows && !info.proto.empty()) {
    // An older client: the field it does not know stays out.
    proto::start_proxy plain{info.url, info.client_addr, {}};
    append_frame(out_, frame_type::open, id, proto::encode_start_proxy(plain), exponent);
    out_ready_.notify();
  } else if (!closed_) {
    append_frame(out_, frame_type::open, id, proto::encode_start_proxy(info), exponent);
    out_ready_.notify();
  }
  return s;
}

void session::send(frame_type type, std::uint32_t id, std::string_view payload) {
  if (closed_) {
    return;
  }
  append_frame(out_, type, id, payload);
  out_ready_.notify();
}

void session::send_window(std::uint32_t id, std::uint32_t increment) {
  if (closed_) {
    return;
  }
  append_window(out_, id, increment);
  out_ready_.notify();
}

asio::awaitable<void> session::write_loop() {
  while (!closed_) {
    if (out_.empty()) {
      co_await out_ready_.wait_until(clock::time_point::max());
      continue;
    }
    // Everything queued goes out in one write: many small frames of many
    // streams share TLS records and system calls.
    std::swap(out_, writing_);
    auto [ec, n] = co_await asio::async_write(*conn_, asio::buffer(writing_), net::use_nothrow);
    writing_.clear();
    if (writing_.capacity() > 4 * read_chunk) {
      writing_.shrink_to_fit();
    }
    out_drained_.notify();
    if (ec) {
      co_return;
    }
  }
}

asio::awaitable<void> session::read_loop() {
  boost::beast::flat_buffer buf;
  if (!rbuf_.empty()) {
    const auto n = boost::asio::buffer_copy(buf.prepare(rbuf_.size()), asio::buffer(rbuf_));
    buf.commit(n);
    rbuf_.clear();
  }
  for (;;) {
    // Parse every complete frame in the buffer.
    const auto data = buf.data();
    const std::string_view bytes(static_cast<const char*>(data.data()), data.size());
    std::size_t used = 0;
    for (;;) {
      std::string_view rest = bytes.substr(used);
      if (rest.size() < header_size) {
        break;
      }
      auto h = decode_header(rest);
      if (!h) {
        spdlog::warn("mux connection: bad frame header ({}); closing it", h.error().message());
        co_return;
      }
      if (rest.size() < header_size + h->length) {
        break;
      }
      if (!handle_frame(*h, rest.substr(header_size, h->length))) {
        co_return;
      }
      used += header_size + h->length;
    }
    buf.consume(used);
    auto [ec, n] = co_await conn_->async_read_some(buf.prepare(read_chunk), net::use_nothrow);
    buf.commit(n);
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted && !closed_) {
        spdlog::debug("mux connection ended: {}", ec.message());
      }
      co_return;
    }
  }
}

bool session::handle_frame(const frame_header& h, std::string_view payload) {
  if (h.type == frame_type::open) {
    if (role_ != role::client) {
      spdlog::warn("mux connection: the client may not open streams; closing it");
      return false;
    }
    std::optional<proto::start_proxy> start = proto::decode_start_proxy(payload);
    if (!start) {
      auto info = proto::decode(payload);
      if (auto* any = info ? std::get_if<proto::start_proxy>(&*info) : nullptr) {
        start = std::move(*any);
      }
    }
    if (!start || streams_.contains(h.stream)) {
      spdlog::warn("mux connection: bad OPEN for stream {}; closing it", h.stream);
      return false;
    }
    const std::uint32_t window = h.flags != 0 ? std::uint32_t{1} << h.flags : opts_.window;
    std::unique_ptr<stream> s(new stream(shared_from_this(), h.stream, window));
    streams_[h.stream] = s.get();
    open_streams_.store(streams_.size(), std::memory_order_relaxed);
    if (on_open) {
      on_open(std::move(s), std::move(*start));
    }
    return true;
  }
  auto it = streams_.find(h.stream);
  if (it == streams_.end()) {
    // A stream this side already closed: what was in flight is dropped.
    return true;
  }
  stream& s = *it->second;
  switch (h.type) {
    case frame_type::data:
      if (s.fin_received_) {
        spdlog::warn("mux connection: DATA after FIN on stream {}; closing the connection",
                     h.stream);
        return false;
      }
      if (s.in_bytes_ + s.unacked_ + payload.size() > s.window_) {
        spdlog::warn("mux connection: stream {} overran its window; closing the connection",
                     h.stream);
        return false;
      }
      s.receive(payload);
      break;
    case frame_type::window:
      s.send_window_ += decode_window(payload);
      s.writable_.notify();
      break;
    case frame_type::fin:
      s.fin_received_ = true;
      s.readable_.notify();
      break;
    case frame_type::reset:
      streams_.erase(it);
      open_streams_.store(streams_.size(), std::memory_order_relaxed);
      s.fail();
      break;
    case frame_type::open:
      break;
  }
  return true;
}

// ---- stream ----

stream::stream(std::shared_ptr<session> s, std::uint32_t id, std::uint32_t window)
    : session_(std::move(s)), id_(id), window_(window), send_window_(window) {}

stream::~stream() {
  close();
}

void stream::receive(std::string_view data) {
  if (data.empty()) {
    return;
  }
  const auto n = asio::buffer_copy(in_.prepare(data.size()), asio::buffer(data));
  in_.commit(n);
  in_bytes_ += data.size();
  readable_.notify();
}

// What was received before stays readable: a peer that answered, sent FIN
// and then RESET (it will read no more) still gets its answer delivered.
void stream::fail() {
  reset_ = true;
  readable_.notify();
  writable_.notify();
}

asio::awaitable<void> stream::wait_readable() {
  while (in_bytes_ == 0 && !fin_received_ && !reset_ && !closed_) {
    co_await readable_.wait_until(clock::time_point::max());
  }
}

asio::awaitable<std::tuple<net::error_code, std::size_t>> stream::read_some(
    asio::mutable_buffer b) {
  co_await wait_readable();
  if (closed_) {
    co_return std::tuple{net::error_code(asio::error::operation_aborted), std::size_t{0}};
  }
  if (in_bytes_ == 0) {
    const net::error_code ec = fin_received_ ? net::error_code(asio::error::eof)
                                             : net::error_code(asio::error::connection_reset);
    co_return std::tuple{ec, std::size_t{0}};
  }
  const std::size_t n = asio::buffer_copy(b, in_.data());
  in_.consume(n);
  if (in_.size() == 0) {
    in_.shrink_to_fit();
  }
  in_bytes_ -= n;
  unacked_ += n;
  // Grant the window back in halves: few WINDOW frames, never a stall.
  if (unacked_ >= window_ / 2 && !fin_received_ && !reset_) {
    session_->send_window(id_, static_cast<std::uint32_t>(unacked_));
    unacked_ = 0;
  }
  co_return std::tuple{net::error_code{}, n};
}

asio::awaitable<net::error_code> stream::write(asio::const_buffer b) {
  const auto* data = static_cast<const char*>(b.data());
  std::size_t left = b.size();
  while (left > 0) {
    if (reset_ || closed_ || session_->closed_ || fin_sent_) {
      co_return net::error_code(asio::error::connection_reset);
    }
    if (send_window_ == 0) {
      co_await writable_.wait_until(clock::time_point::max());
      continue;
    }
    if (session_->out_.size() >= session_->opts_.max_buffered_out) {
      co_await session_->out_drained_.wait_until(clock::time_point::max());
      continue;
    }
    const std::size_t n = std::min({left, send_window_, session_->opts_.max_data_frame});
    session_->send(frame_type::data, id_, std::string_view(data, n));
    send_window_ -= n;
    data += n;
    left -= n;
  }
  co_return net::error_code{};
}

void stream::shutdown_send() {
  if (fin_sent_ || reset_ || closed_) {
    return;
  }
  fin_sent_ = true;
  session_->send(frame_type::fin, id_, {});
}

void stream::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (!reset_ && !(fin_sent_ && fin_received_)) {
    session_->send(frame_type::reset, id_, {});
  }
  session_->streams_.erase(id_);
  session_->open_streams_.store(session_->streams_.size(), std::memory_order_relaxed);
  in_.clear();
  in_.shrink_to_fit();
  in_bytes_ = 0;
  readable_.notify();
  writable_.notify();
}

}  // namespace porthole::mux
