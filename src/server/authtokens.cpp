#include "server/authtokens.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>

#include "log/event.h"

namespace porthole::server {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string db_key(std::int64_t id) {
  return "db:" + std::to_string(id);
}

}  // namespace

authtokens::authtokens(std::vector<std::string> file_tokens, std::shared_ptr<token_source> source,
                       token_limits defaults)
    : file_tokens_(std::move(file_tokens)), source_(std::move(source)), defaults_(defaults) {}

authtokens::~authtokens() {
  source_->on_changed = nullptr;  // the source may outlive whoever it woke
}

bool authtokens::refresh() {
  const bool first = !std::exchange(refreshed_, true);
  try {
    std::optional<token_snapshot> now = source_->read_changes();
    if (!now) {
      return false;
    }
    take(std::move(*now));
    return true;
  } catch (const std::exception& e) {
    if (first) {
      throw;
    }
    if (auto skipped = error_log_.admit()) {
      log::error("cannot read the tokens; keeping the ones read before",
                 {{"from", source_->where()},
                  {"error", e.what()},
                  {"suppressed", log::if_nonzero(*skipped)}});
    }
    return false;
  }
}

void authtokens::take(token_snapshot now) {
  ever_had_tokens_ = now.ever_had_tokens;
  by_hash_.clear();
  reserved_.clear();
  ids_.clear();
  for (token_record& r : now.tokens) {
    ids_.insert(r.id);
    for (const std::string& s : r.subdomains) {
      reserved_[s] = r.id;
    }
    std::string hash = r.hash;
    by_hash_.emplace(std::move(hash), std::move(r));
  }
  log::info(required() ? "tokens read; clients must bring one" : "tokens read",
            {{"from", source_->where()}, {"tokens", by_hash_.size()}});
}

token_identity authtokens::identity_of(const token_record& r) const {
  token_identity who;
  who.key = db_key(r.id);
  who.label = "token " + std::to_string(r.id) + (r.name.empty() ? "" : " '" + r.name + "'");
  who.db_id = r.id;
  who.limits = defaults_;
  who.own_tunnels = r.max_tunnels.has_value();
  who.own_tcp_ports = r.max_tcp_ports.has_value();
  who.own_conns = r.max_conns.has_value();
  who.limits.max_tunnels = r.max_tunnels.value_or(defaults_.max_tunnels);
  who.limits.max_tcp_ports = r.max_tcp_ports.value_or(defaults_.max_tcp_ports);
  who.limits.max_conns = r.max_conns.value_or(defaults_.max_conns);
  return who;
}

std::optional<token_identity> authtokens::check(std::string_view token) const {
  if (!required()) {
    return token_identity{};
  }
  // A lookup by hash: what its timing could tell is about the hash of the
  // token tried, which says nothing about the tokens stored.
  if (!by_hash_.empty()) {
    if (auto it = by_hash_.find(hash_token(token)); it != by_hash_.end()) {
      return identity_of(it->second);
    }
  }
  // Every file token is compared, in constant time, so timing tells nothing.
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < file_tokens_.size(); ++i) {
    const std::string& t = file_tokens_[i];
    const bool match =
        t.size() == token.size() && CRYPTO_memcmp(t.data(), token.data(), token.size()) == 0;
    if (match && !found) {
      found = i;
    }
  }
  if (!found) {
    return std::nullopt;
  }
  token_identity who;
  who.key = "file:" + std::to_string(*found + 1);
  who.label = "--authtokens token " + std::to_string(*found + 1);
  who.limits = defaults_;
  return who;
}

std::string authtokens::reserved_by(std::string_view subdomain) const {
  auto it = reserved_.find(lower(subdomain));
  return it == reserved_.end() ? "" : db_key(it->second);
}

bool authtokens::live(const token_identity& who) const {
  return !who.db_id || ids_.contains(*who.db_id);
}

void authtokens::record_use(const token_identity& who) {
  if (who.db_id) {
    uses_[*who.db_id] = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  }
}

void authtokens::flush_uses() {
  for (auto it = uses_.begin(); it != uses_.end();) {
    bool written = false;
    try {
      written = source_->touch(it->first, it->second);
    } catch (const std::exception& e) {
      if (auto skipped = error_log_.admit()) {
        log::warn("cannot record when a token was last used",
                  {{"error", e.what()}, {"suppressed", log::if_nonzero(*skipped)}});
      }
    }
    it = written ? uses_.erase(it) : std::next(it);
  }
}

}  // namespace porthole::server
