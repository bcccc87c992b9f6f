#pragma once
// The authtokens of a cluster, in etcd: what tokens.db is to a single node,
// shared by every node. As in tokens.db, only a token's SHA-256 hash is
// kept, never the token. Under <prefix>tokens/:
//
//   last-id          the last id given. Ids are never reused; the key's
//                    existence says a token was ever added (revoking every
//                    token does not open the cluster to anyone).
//   id/<id>          the token's record, JSON: id, name, prefix, hash (hex),
//                    subdomains, limits, created.
//   subdomain/<sub>  "<id>": the token that reserved <sub>. Created in the
//                    token's own transaction, only if it does not exist, so
//                    two tokens never reserve one subdomain.
//   used/<id>        when the token was last used (Unix seconds), written by
//                    the nodes at most once a minute each.
//
// A token is added by one transaction: it succeeds only if last-id is as
// read and none of the subdomains is reserved, and writes last-id, the
// record and the reservations together. A revoke deletes the record, its
// reservations and its last-used time in one transaction.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cluster/etcd_client.h"
#include "server/token_source.h"

namespace porthole::cluster {

/// The tokens as read at one revision of etcd.
struct token_listing {
  server::token_snapshot snapshot;
  std::int64_t revision = 0;
};

/// The cluster's tokens in etcd. Single-threaded like its client.
class etcd_tokens {
 public:
  /// `prefix` is the cluster's (--cluster-prefix), ending in '/' or not.
  etcd_tokens(std::shared_ptr<etcd_client> etcd, std::string prefix);

  /// Adds a token and returns it (the only time it is ever seen) with its
  /// record. Throws std::invalid_argument for a bad name or subdomain, or a
  /// subdomain another token reserved (naming that token).
  net::asio::awaitable<etcd_result<std::pair<std::string, server::token_record>>> add(
      server::token_request req);

  /// Every token (oldest first, with its last use) and whether one was ever
  /// added, read at one revision.
  net::asio::awaitable<etcd_result<token_listing>> list();

  /// Removes token `id` and its reservations; false if there is none.
  net::asio::awaitable<etcd_result<bool>> revoke(std::int64_t id);

  /// Records that token `id` was used at `when` (Unix seconds), unless it
  /// was revoked.
  net::asio::awaitable<etcd_result<bool>> touch(std::int64_t id, std::int64_t when);

  /// The prefix of every key of the tokens: what a node watches.
  const std::string& keys() const { return keys_; }

  /// True for a key of keys() whose change may change which tokens are
  /// accepted: every key but a last-used time.
  bool affects_tokens(std::string_view key) const;

  /// The record of a token as it is stored, and back (nullopt for a value
  /// that is not one).
  static std::string encode(const server::token_record& r);
  static std::optional<server::token_record> decode(std::string_view json);

 private:
  std::string last_id_key() const { return keys_ + "last-id"; }
  std::string id_key(std::int64_t id) const { return keys_ + "id/" + std::to_string(id); }
  std::string subdomain_key(std::string_view s) const {
    return keys_ + "subdomain/" + std::string(s);
  }
  std::string used_key(std::int64_t id) const { return keys_ + "used/" + std::to_string(id); }

  std::shared_ptr<etcd_client> etcd_;
  std::string keys_;  ///< <prefix>tokens/
};

/// Runs `task` on `io`, an io_context nothing else runs, until it ends, and
/// gives its result (or throws what it threw): for callers that cannot wait
/// asynchronously (the token commands; a node reading its tokens before its
/// own loop runs). What the task left behind (idle connections) stays on `io`.
template <class T>
T run_to_end(net::asio::io_context& io, net::asio::awaitable<T> task) {
  auto done = net::asio::co_spawn(io, std::move(task), net::asio::use_future);
  io.restart();
  while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (io.run_one() == 0) {
      throw std::logic_error("an etcd call stopped with nothing left to run");
    }
  }
  return done.get();
}

}  // namespace porthole::cluster
