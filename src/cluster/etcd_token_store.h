#pragma once
// The cluster's authtokens in etcd (etcd_tokens.h) for `portholed token ...
// --cluster`: each call waits for etcd's answer, as token_store's calls do
// on tokens.db.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/config.h"
#include "server/token_store.h"

namespace porthole::cluster {

/// Throws std::runtime_error naming etcd's URL when etcd cannot be reached
/// or answers with an error.
class etcd_token_store {
 public:
  /// The tokens of cluster `c` (its etcd URL and prefix; with etcds://, its
  /// CA and the certificate and key shown to etcd). Contacts nobody yet.
  /// Throws std::runtime_error for a bad URL or a TLS file that cannot be
  /// loaded.
  explicit etcd_token_store(const server::cluster_config& c);
  ~etcd_token_store();
  etcd_token_store(const etcd_token_store&) = delete;
  etcd_token_store& operator=(const etcd_token_store&) = delete;

  /// Adds a token and returns it (the only time it is ever seen) with its
  /// record. Throws std::invalid_argument for a bad name or subdomain, or a
  /// subdomain another token reserved (naming that token).
  std::pair<std::string, server::token_record> add(const server::token_request& req);

  /// Every token, oldest first.
  std::vector<server::token_record> list();

  /// Removes token `id` and its reservations; false if there is none.
  bool revoke(std::int64_t id);

  /// Where the tokens are: "etcd://HOST:PORT (keys /prefix/tokens/)".
  const std::string& where() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace porthole::cluster
