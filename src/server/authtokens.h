#pragma once
// The authtokens the running server accepts: those of an --authtokens file
// (read once) and those of a token source (tokens.db, or a cluster's etcd)
// followed while it runs, with the tokens' limits and reserved subdomains.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "server/connection_limits.h"
#include "server/token_limits.h"
#include "server/token_source.h"

namespace porthole::server {

class authtokens {
 public:
  /// `file_tokens` from --authtokens; `source` the other tokens.
  /// `defaults` apply to file tokens and to the source's tokens without
  /// their own.
  authtokens(std::vector<std::string> file_tokens, std::shared_ptr<token_source> source,
             token_limits defaults);
  ~authtokens();

  /// Takes the source's tokens if they changed; true if they may have.
  /// The first call throws std::runtime_error for tokens that cannot be
  /// read; later ones log it (rate-limited) and keep the tokens read before.
  bool refresh();

  /// Calls `wake` whenever the source says its tokens may have changed
  /// (a cluster's etcd does; tokens.db is only polled).
  void on_changed(std::function<void()> wake) { source_->on_changed = std::move(wake); }

  /// True when a client must bring a token: an --authtokens file was given,
  /// or the source has ever had a token (revoking the last one does not open
  /// the server to anyone).
  bool required() const { return !file_tokens_.empty() || ever_had_tokens_; }

  /// The token `token` is, or nullopt if it is not accepted. When no token is
  /// required any is accepted, with an empty key and no limits.
  std::optional<token_identity> check(std::string_view token) const;

  /// The key (as in token_identity) of the token that reserved `subdomain`
  /// (compared case-folded), or "" if none did.
  std::string reserved_by(std::string_view subdomain) const;

  /// False for a source's token since revoked (or whose file is gone).
  bool live(const token_identity& who) const;

  /// Remembers that a source's token was used now; written by flush_uses().
  void record_use(const token_identity& who);

  /// Writes the last-used times recorded, without waiting for a lock (what
  /// cannot be written now is tried again next time).
  void flush_uses();

  /// Where the source's tokens are, for log lines.
  std::string source() const { return source_->where(); }

 private:
  void take(token_snapshot now);
  token_identity identity_of(const token_record& r) const;

  std::vector<std::string> file_tokens_;
  std::shared_ptr<token_source> source_;
  token_limits defaults_;
  bool refreshed_ = false;
  bool ever_had_tokens_ = false;
  std::map<std::string, token_record, std::less<>> by_hash_;
  std::map<std::string, std::int64_t, std::less<>> reserved_;  ///< subdomain -> token id
  std::set<std::int64_t> ids_;
  std::map<std::int64_t, std::int64_t> uses_;  ///< token id -> Unix time, not yet written
  log_throttle error_log_{std::chrono::seconds(60)};
};

}  // namespace porthole::server
