#pragma once
// The tokens a node of a cluster accepts: the cluster's, in etcd
// (etcd_tokens.h), followed while the node runs. A watch on the tokens' keys
// says when they changed; its events are hints, and what the node accepts
// changes only with a read of every token (at one revision). A read every
// 30 s besides catches what a broken watch may have missed. While etcd
// cannot be reached the node keeps the tokens it read last.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "cluster/etcd_tokens.h"
#include "net/event.h"
#include "server/connection_limits.h"
#include "server/token_source.h"

namespace porthole::cluster {

class etcd_token_source final : public server::token_source,
                                public std::enable_shared_from_this<etcd_token_source> {
 public:
  struct options {
    /// How often every token is read, whatever the watch says.
    std::chrono::milliseconds full_read_period{30000};
    /// How long a read that failed waits before it is tried again.
    std::chrono::milliseconds retry_delay{1000};
    /// A token's last use is written at most this often by one node.
    std::chrono::seconds touch_period{60};
  };

  /// `where` names the etcd and the prefix in log lines.
  etcd_token_source(net::asio::any_io_executor ex, std::shared_ptr<etcd_client> etcd,
                    std::string prefix, std::string where, options o);
  ~etcd_token_source() override;

  /// Takes `first` (read before the node's loop runs) as the tokens, and
  /// follows the changes made after it.
  void start(token_listing first);

  /// Stops following; the tokens read last stay. Idempotent.
  void stop();

  std::optional<server::token_snapshot> read_changes() override;
  bool touch(std::int64_t id, std::int64_t when) override;
  std::string where() const override { return where_; }

 private:
  net::asio::awaitable<void> follow_watch();
  net::asio::awaitable<void> read_when_asked();
  net::asio::awaitable<void> write_use(std::int64_t id, std::int64_t when);
  void ask_read();
  void take(token_listing now);

  net::asio::any_io_executor ex_;
  std::shared_ptr<etcd_client> etcd_;
  etcd_tokens tokens_;
  std::string where_;
  options opts_;
  server::token_snapshot snapshot_;
  std::int64_t revision_ = 0;      ///< of the snapshot
  bool known_ = false;             ///< snapshot_ is a read's, not the empty default
  bool fresh_ = false;             ///< the snapshot was not given by read_changes() yet
  std::int64_t watched_from_ = 0;  ///< the next revision the watch is to see
  bool read_asked_ = false;        ///< a change was seen since the last read began
  bool unreachable_ = false;       ///< the last read failed
  std::map<std::int64_t, std::int64_t> written_;  ///< token id -> last use written (Unix s)
  std::unique_ptr<etcd_watch> watch_;
  net::event asked_;
  net::event stopping_;
  bool stopped_ = false;
  server::log_throttle error_log_{std::chrono::seconds(60)};
};

}  // namespace porthole::cluster
