#pragma once
// Where the authtokens a running server accepts come from (besides an
// --authtokens file): <state-dir>/tokens.db on a single node, the cluster's
// etcd on a node of a cluster (cluster/etcd_token_source.h). The server
// follows its source while it runs.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "server/token_store.h"

namespace porthole::server {

/// Every token of a source at one moment.
struct token_snapshot {
  std::vector<token_record> tokens;
  /// A token was ever added, even if every one is revoked since: a client
  /// must still bring one.
  bool ever_had_tokens = false;

  bool operator==(const token_snapshot&) const = default;
};

/// The tokens as a running server reads them. Used from the server's thread
/// only.
class token_source {
 public:
  virtual ~token_source() = default;

  /// The tokens, if they may differ from those it gave last (none before the
  /// first call); nullopt if not. Throws std::runtime_error if they cannot be
  /// read: the caller keeps the ones it had.
  virtual std::optional<token_snapshot> read_changes() = 0;

  /// Records that token `id` was used at `when` (Unix seconds), without
  /// waiting. False if it could not be written now (the caller tries again
  /// later); true also when the source chose not to write it.
  virtual bool touch(std::int64_t id, std::int64_t when) = 0;

  /// Where the tokens are, for log lines: a path, or an etcd and a prefix.
  virtual std::string where() const = 0;

  /// Set by the server: called when the tokens may have changed, so that the
  /// server reads them at once rather than at its next poll. A source that
  /// learns of a change only when asked (tokens.db) never calls it.
  std::function<void()> on_changed;
};

/// <state-dir>/tokens.db, followed: opened once it exists, read again when
/// another process changed it (a stat and PRAGMA data_version when it did
/// not), forgotten once it is removed.
class tokens_db_source final : public token_source {
 public:
  /// `path` need not exist (yet); it is never created.
  explicit tokens_db_source(std::filesystem::path path);
  ~tokens_db_source() override;

  std::optional<token_snapshot> read_changes() override;
  bool touch(std::int64_t id, std::int64_t when) override;
  std::string where() const override { return path_.string(); }

 private:
  std::filesystem::path path_;
  std::optional<token_store> store_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace porthole::server
