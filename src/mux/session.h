#pragma once
// One multiplexed connection (the "mux" extension): the server opens a stream
// per public connection on the client's mux connection instead of taking a
// pooled proxy connection, so a new public connection costs no handshake, no
// round trip and no socket of its own. Each stream has its own flow-control
// window in each direction and can half-close.

#include <atomic>
#include <boost/beast/core/flat_buffer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "mux/frame.h"
#include "net/channel.h"
#include "net/event.h"
#include "net/stream.h"
#include "proto/messages.h"

namespace porthole::mux {

struct options {
  std::uint32_t window = 1024 * 1024;          ///< bytes in flight per stream and direction
  std::size_t max_data_frame = 64 * 1024;      ///< DATA payload bound when sending
  std::size_t max_buffered_out = 1024 * 1024;  ///< writers wait while more is queued
  /// The peer negotiated "stream_windows": open() may give a stream a window
  /// of its own (said in the OPEN frame's flags).
  bool stream_windows = false;
};

class stream;

/// Single-threaded: use it from the executor of its connection; closed() and
/// stream_count() may be read from any thread.
class session : public std::enable_shared_from_this<session> {
 public:
  enum class role { server, client };

  /// `initial` are bytes already read from the connection after RegMux.
  session(std::unique_ptr<net::tls_stream> conn, role r, std::string initial = {}, options o = {});
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Reads and writes frames until the connection ends or close(); then every
  /// stream fails with connection_reset.
  net::asio::awaitable<void> run();

  /// Ends the connection and every stream.
  void close();
  /// From any thread (a relaxed read: a hint, exact on the session's own).
  bool closed() const { return closed_.load(std::memory_order_relaxed); }

  /// Server: a new stream that tells the client `info` (which tunnel, which
  /// public address). Data may be written at once. `window` (a power of two
  /// from 4 KiB to 1 MiB), if the peer negotiated stream windows: the
  /// stream's window each way instead of options::window, so that a stream
  /// whose reader may stall holds less at either end.
  std::unique_ptr<stream> open(const proto::start_proxy& info, std::uint32_t window = 0);

  /// Client: called for each stream the server opens.
  std::function<void(std::unique_ptr<stream>, proto::start_proxy)> on_open;

  /// From any thread (a relaxed read: a hint, exact on the session's own).
  std::size_t stream_count() const { return open_streams_.load(std::memory_order_relaxed); }

 private:
  friend class stream;

  net::asio::awaitable<void> read_loop();
  net::asio::awaitable<void> write_loop();
  bool handle_frame(const frame_header& h, std::string_view payload);
  void send(frame_type type, std::uint32_t id, std::string_view payload);
  void send_window(std::uint32_t id, std::uint32_t increment);

  std::unique_ptr<net::tls_stream> conn_;
  role role_;
  options opts_;
  std::string rbuf_;
  std::string out_;      ///< frames queued for the connection
  std::string writing_;  ///< frames being written
  net::event out_ready_;
  net::event out_drained_;
  std::unordered_map<std::uint32_t, stream*> streams_;
  std::uint32_t next_id_ = 1;
  /// Written on the session's executor only; atomic so that whoever picks a
  /// session for a new stream may look from another thread.
  std::atomic<bool> closed_ = false;
  std::atomic<std::size_t> open_streams_ = 0;  ///< streams_.size()
};

/// One proxied connection on a mux session.
class stream final : public net::channel {
 public:
  ~stream() override;

  net::asio::awaitable<std::tuple<net::error_code, std::size_t>> read_some(
      net::asio::mutable_buffer b) override;
  net::asio::awaitable<void> wait_readable() override;
  net::asio::awaitable<net::error_code> write(net::asio::const_buffer b) override;
  bool can_half_close() const override { return true; }
  void shutdown_send() override;
  void close() override;

  std::uint32_t id() const { return id_; }

 private:
  friend class session;
  stream(std::shared_ptr<session> s, std::uint32_t id, std::uint32_t window);

  void receive(std::string_view data);
  void fail();

  std::shared_ptr<session> session_;
  std::uint32_t id_;
  boost::beast::flat_buffer in_;  ///< received, not yet read; holds no memory when empty
  std::size_t in_bytes_ = 0;      ///< bytes buffered, not yet read
  std::size_t unacked_ = 0;       ///< bytes read and not yet granted back with WINDOW
  std::uint32_t window_;          ///< its window, each way
  std::size_t send_window_;
  bool fin_received_ = false;
  bool fin_sent_ = false;
  bool reset_ = false;
  bool closed_ = false;
  net::event readable_;
  net::event writable_;
};

}  // namespace porthole::mux
