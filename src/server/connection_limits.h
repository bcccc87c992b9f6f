#pragma once
// Bounds on connections before anyone owns them: how many one IP address may
// hold open on a port, how many may be in the TLS handshake or waiting for
// their first message at once, and logging of a flood without flooding the log.

#include <chrono>
#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "net/stream.h"

namespace porthole::server {

/// Rate-limited logging of one kind of event: the first event of each window
/// is logged, the others are counted and the count is told with the next one
/// logged. Single-threaded.
class log_throttle {
 public:
  using clock = std::chrono::steady_clock;

  explicit log_throttle(clock::duration window = std::chrono::seconds(1)) : window_(window) {}

  /// nullopt: do not log this event. Otherwise log it, with the number of
  /// events not logged since the last line (a log line's `suppressed` field).
  std::optional<std::size_t> admit(clock::time_point now = clock::now());

 private:
  clock::duration window_;
  std::optional<clock::time_point> last_;
  std::size_t suppressed_ = 0;
};

/// "30s": a timeout as log lines show it.
std::string seconds_text(std::chrono::seconds s);

/// The IPv4 form of a v4-mapped IPv6 address, for counting and logging.
std::string ip_string(const net::tcp::endpoint& ep);

/// Where a public connection comes from, read once when it is accepted (the
/// address accept() gives, so no system call asks for it again).
struct public_peer {
  std::string addr;  ///< host:port, as logs and the client's StartProxy show it
  std::string ip;    ///< the address alone (ip_string), for X-Forwarded-For and limits
  net::tcp::endpoint endpoint{};  ///< as accepted (unset for a connection another node relayed)
};

/// Counts the open connections of each IP address on one kind of port.
class ip_connection_counts {
  struct state {
    std::size_t limit;
    std::map<std::string, std::size_t, std::less<>> open;
  };

 public:
  /// One counted connection; uncounted when destroyed. Empty (false) when
  /// the address had its limit already.
  class slot {
   public:
    slot() = default;
    slot(slot&& other) noexcept = default;
    slot& operator=(slot&& other) noexcept;
    ~slot();
    explicit operator bool() const { return state_ != nullptr; }

   private:
    friend class ip_connection_counts;
    slot(std::shared_ptr<state> s, std::string ip) : state_(std::move(s)), ip_(std::move(ip)) {}
    void reset();
    std::shared_ptr<state> state_;
    std::string ip_;
  };

  /// `limit` 0: no limit.
  explicit ip_connection_counts(std::size_t limit)
      : state_(std::make_shared<state>(state{limit, {}})) {}

  /// A slot for one more connection from `ip`, or an empty one at the limit.
  slot acquire(const std::string& ip);

  std::size_t limit() const { return state_->limit; }
  std::size_t open(std::string_view ip) const;
  /// Addresses with at least one open connection.
  std::size_t addresses() const { return state_->open.size(); }

 private:
  std::shared_ptr<state> state_;
};

/// Connections in their TLS handshake or waiting for their first message,
/// bounded as a whole: when full, a newcomer cuts off the oldest one (which
/// has waited longest and is the likeliest to be a stalled or hostile peer),
/// so that a flood from many addresses cannot lock honest clients out for the
/// length of a handshake time-out.
class handshake_slots {
  struct entry {
    net::tcp::socket* sock;
    std::string peer;
    bool cut_off = false;
  };
  struct state {
    std::size_t limit;
    std::list<std::shared_ptr<entry>> waiting;  ///< oldest first
    log_throttle throttle;
  };

 public:
  /// One connection in its handshake; leaves when destroyed or by leave().
  class slot {
   public:
    slot() = default;
    slot(slot&&) noexcept = default;
    slot& operator=(slot&& other) noexcept;
    ~slot() { leave(); }

    /// The connection is past its first message: it no longer counts.
    void leave();
    /// True if a newcomer cut this connection off (its socket is shut down).
    bool cut_off() const { return entry_ && entry_->cut_off; }

   private:
    friend class handshake_slots;
    slot(std::shared_ptr<state> s, std::shared_ptr<entry> e,
         std::list<std::shared_ptr<entry>>::iterator it)
        : state_(std::move(s)), entry_(std::move(e)), it_(it) {}
    std::shared_ptr<state> state_;
    std::shared_ptr<entry> entry_;
    std::list<std::shared_ptr<entry>>::iterator it_;
    bool left_ = false;
  };

  /// `limit` 0: no limit.
  explicit handshake_slots(std::size_t limit)
      : state_(std::make_shared<state>(state{limit, {}, log_throttle{}})) {}

  /// Counts `sock` (which must outlive the slot or leave it first) as in its
  /// handshake; at the limit, the oldest waiting connection is shut down and
  /// logged (rate-limited).
  slot enter(net::tcp::socket& sock, std::string peer);

  std::size_t waiting() const { return state_->waiting.size(); }

 private:
  std::shared_ptr<state> state_;
};

}  // namespace porthole::server
