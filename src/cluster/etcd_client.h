#pragma once
// A small etcd v3 client over etcd's JSON gateway (HTTP/1.1 at /v3/..., as
// etcd 3.4 serves it on its client URLs), plain or TLS: the key-value calls,
// transactions, leases and watches portholed's shared tunnel namespace needs.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_messages.h"
#include "net/stream.h"

namespace porthole::cluster {

/// The largest answer body accepted from etcd (a range of many keys), and
/// the largest single object of a watch stream.
inline constexpr std::size_t max_etcd_answer = 16 * 1024 * 1024;

/// One member of the cluster, as it is dialed.
struct etcd_endpoint {
  std::string host{};  ///< a name or an IP address (IPv6 without brackets)
  std::string port{};

  bool operator==(const etcd_endpoint&) const = default;
};

/// Where the cluster is and how to talk to it.
struct etcd_options {
  std::vector<etcd_endpoint> endpoints{};  ///< tried in order; at least one
  bool tls = false;
  /// With tls: the CA certificates (PEM) etcd's certificate must chain to;
  /// empty: the system's. The certificate must name the endpoint's host
  /// (a name or an IP address).
  std::filesystem::path ca_file{};
  /// With tls: the client certificate (PEM chain) and key to present, for a
  /// cluster that asks for one (--client-cert-auth); empty: none.
  std::filesystem::path cert_file{}, key_file{};
  /// The deadline of each attempt at a call on one endpoint: connecting,
  /// the TLS handshake, sending and the whole answer.
  std::chrono::milliseconds request_timeout{2000};
  /// Connections open at once for calls (watches have their own); a call
  /// beyond waits, within its deadline, for one to be free. Idle ones are
  /// kept for the next calls.
  std::size_t max_connections = 16;
};

/// Parses `etcd://host:port[,host:port...]` (plain) or `etcds://...` (TLS);
/// IPv6 addresses in brackets, port 2379 (etcd's) when left out. Throws
/// std::runtime_error naming what is wrong, e.g. `"etcd://a:b": port "b"
/// is not a number`.
etcd_options parse_cluster_url(std::string_view url);

/// The stream of changes to a key or a prefix, on a connection of its own.
/// Obtained from etcd_client::watch(). Single-threaded like the client; it
/// does not need the client once started.
class etcd_watch {
 public:
  /// A watch that watches nothing: next() fails.
  etcd_watch() = default;
  etcd_watch(etcd_watch&&) noexcept = default;
  etcd_watch& operator=(etcd_watch&&) noexcept;
  /// Calls cancel().
  ~etcd_watch();

  /// The next batch of changes, in revision order; waits as long as it
  /// takes (a quiet key has none). May be cancelled (raced against a timer
  /// with `||`) without losing a batch. Fails once the stream breaks or
  /// etcd ends it: a caller watches again from the last revision it saw + 1.
  /// After a batch with `canceled` (compaction), the next call fails. A
  /// member whose host or network went away is noticed by TCP keep-alive
  /// (about 25 s); one that is up but stuck is not: bound the wait with a
  /// timer where that matters.
  net::asio::awaitable<etcd_result<watch_batch>> next();

  /// Closes the stream; a pending or later next() fails. Idempotent.
  void cancel();

  /// What the client made for a new watch (defined in etcd_client.cpp).
  struct state;
  explicit etcd_watch(std::shared_ptr<state> s) : state_(std::move(s)) {}

 private:
  std::shared_ptr<state> state_;  // shared with the coroutine that reads the stream
};

/// A client of one etcd cluster. Its calls are coroutines that may run
/// concurrently from several coroutines on the client's executor (one
/// thread).
///
/// A call tries the endpoints in turn, starting with the last one that
/// answered, each with its own deadline (request_timeout): it takes at most
/// request_timeout times the number of endpoints (plus, when max_connections
/// calls are in flight, up to request_timeout waiting for one to end). It
/// moves on to the next endpoint when one cannot be reached, or, for calls
/// that change nothing (range, lease_keepalive, watch), when one does not
/// answer in time or cannot serve. A call that changes the store and was
/// sent without an answer is not sent again: it fails as unavailable, its
/// outcome unknown (a claimer reads the key to learn whether it won), and
/// the next call starts with the next endpoint.
///
/// Destroying the client closes its connections: calls still in flight fail.
class etcd_client {
 public:
  /// Throws std::runtime_error if a TLS file cannot be loaded or there is no
  /// endpoint.
  etcd_client(net::asio::any_io_executor ex, etcd_options options);
  ~etcd_client();
  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  /// The key, if it exists.
  net::asio::awaitable<etcd_result<range_result>> range(std::string key);
  /// Every key that starts with `prefix`, in key order.
  net::asio::awaitable<etcd_result<range_result>> range_prefix(std::string prefix);

  /// Sets `key` to `value`, bound to `lease` unless it is 0: the revision of the put.
  net::asio::awaitable<etcd_result<std::int64_t>> put(std::string key, std::string value,
                                                      std::int64_t lease = 0);

  /// Deletes `key`.
  net::asio::awaitable<etcd_result<erase_result>> erase(std::string key);
  /// Deletes every key that starts with `prefix`.
  net::asio::awaitable<etcd_result<erase_result>> erase_prefix(std::string prefix);

  /// Runs `success` if every comparison holds, else `failure`, atomically.
  net::asio::awaitable<etcd_result<txn_result>> txn(std::vector<compare> compares,
                                                    std::vector<op> success,
                                                    std::vector<op> failure = {});

  /// A new lease that lives `ttl` unless kept alive (etcd may round `ttl` up
  /// to its minimum).
  net::asio::awaitable<etcd_result<lease_grant_result>> lease_grant(std::chrono::seconds ttl);
  /// Renews the lease: its TTL, restarted. 0 when the lease is gone (expired,
  /// revoked or never granted), which is not an error.
  net::asio::awaitable<etcd_result<std::chrono::seconds>> lease_keepalive(std::int64_t id);
  /// Ends the lease now; the keys bound to it are deleted. The revision
  /// after. A lease that is gone is an error with code 5 (not found).
  net::asio::awaitable<etcd_result<std::int64_t>> lease_revoke(std::int64_t id);

  /// Starts watching `key`, or every key starting with it if `prefix`, from
  /// `start_revision` (0: changes from now on). Done when etcd confirmed the
  /// watch; the changes come from etcd_watch::next().
  net::asio::awaitable<etcd_result<etcd_watch>> watch(std::string key, bool prefix,
                                                      std::int64_t start_revision = 0);

  /// The connections and settings the calls share (defined in etcd_client.cpp).
  struct state;

 private:
  std::shared_ptr<state> state_;  // shared with the calls, which may outlive *this
};

}  // namespace porthole::cluster
