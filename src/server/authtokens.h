#pragma once
// The authtokens the running server accepts: those of an --authtokens file
// (read once) and those of <state-dir>/tokens.db (followed while it runs),
// with the tokens' limits and reserved subdomains.

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "server/connection_limits.h"
#include "server/token_limits.h"
#include "server/token_store.h"

namespace porthole::server {

class authtokens {
 public:
  /// `file_tokens` from --authtokens; `db_path` need not exist (yet).
  /// `defaults` apply to file tokens and to db tokens without their own.
  authtokens(std::vector<std::string> file_tokens, std::filesystem::path db_path,
             token_limits defaults);
  ~authtokens();

  /// Follows tokens.db: opens it once it exists, re-reads it when another
  /// process changed it (a stat and PRAGMA data_version when it did not),
  /// forgets it once it is removed. True if its tokens may have changed.
  /// The first call throws std::runtime_error for a file that cannot be
  /// read; later ones log it (rate-limited) and keep the tokens read before.
  bool refresh();

  /// True when a client must bring a token: an --authtokens file was given,
  /// or tokens.db has ever had a token (revoking the last one does not open
  /// the server to anyone).
  bool required() const { return !file_tokens_.empty() || ever_had_tokens_; }

  /// The token `token` is, or nullopt if it is not accepted. When no token is
  /// required any is accepted, with an empty key and no limits.
  std::optional<token_identity> check(std::string_view token) const;

  /// The key (as in token_identity) of the token that reserved `subdomain`
  /// (compared case-folded), or "" if none did.
  std::string reserved_by(std::string_view subdomain) const;

  /// False for a db token since revoked (or whose file is gone).
  bool live(const token_identity& who) const;

  /// Remembers that a db token was used now; written by flush_uses().
  void record_use(const token_identity& who);

  /// Writes the last-used times recorded, without waiting for a lock (what
  /// cannot be written now is tried again next time).
  void flush_uses();

  /// Tokens in tokens.db now.
  std::size_t db_tokens() const { return by_hash_.size(); }
  const std::filesystem::path& db_path() const { return db_path_; }

 private:
  void reload();
  token_identity identity_of(const token_record& r) const;

  std::vector<std::string> file_tokens_;
  std::filesystem::path db_path_;
  token_limits defaults_;
  std::optional<token_store> store_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  bool refreshed_ = false;
  bool ever_had_tokens_ = false;
  std::map<std::string, token_record, std::less<>> by_hash_;
  std::map<std::string, std::int64_t, std::less<>> reserved_;  ///< subdomain -> token id
  std::set<std::int64_t> ids_;
  std::map<std::int64_t, std::int64_t> uses_;  ///< token id -> Unix time, not yet written
  log_throttle error_log_{std::chrono::seconds(60)};
};

}  // namespace porthole::server
