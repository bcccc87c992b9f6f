#pragma once
// The authtokens kept in <state-dir>/tokens.db (SQLite): each token's hash,
// a short prefix to recognise it by, its name, reserved subdomains and own
// limits. Written by `portholed token ...`, read (and its last-used times
// written) by the running server.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::server {

/// One token as stored; never the token itself.
struct token_record {
  std::int64_t id = 0;                       ///< never reused, even after a revoke
  std::string name;                          ///< may be empty; need not be unique
  std::string prefix;                        ///< the token's first characters, for display
  std::string hash;                          ///< hash_token() of the token (32 bytes)
  std::vector<std::string> subdomains;       ///< reserved for this token, lower case
  std::optional<std::size_t> max_tunnels;    ///< nullopt: the server's default
  std::optional<std::size_t> max_tcp_ports;  ///< nullopt: the server's default
  std::optional<std::size_t> max_conns;      ///< nullopt: the server's default
  std::int64_t created = 0;                  ///< Unix time, seconds
  std::optional<std::int64_t> last_used;     ///< Unix time of the last Auth with it

  bool operator==(const token_record&) const = default;
};

/// What `token add` asks for.
struct token_request {
  std::string name;
  std::vector<std::string> subdomains;
  std::optional<std::size_t> max_tunnels;
  std::optional<std::size_t> max_tcp_ports;
  std::optional<std::size_t> max_conns;
};

/// SHA-256 of a token, as 32 raw bytes: what the store keeps and looks up.
std::string hash_token(std::string_view token);

/// A new token: "ph_" and 48 hex digits (192 random bits).
std::string generate_token();

/// True for a token name: 1..64 of letters, digits and ".-_@", starting with
/// a letter (so that it is never taken for an id).
bool valid_token_name(std::string_view name);

/// A new token for `req` and its record, without an id: what every store
/// adds. Its subdomains are lower case, each once, sorted. Throws
/// std::invalid_argument for a bad name or subdomain.
std::pair<std::string, token_record> make_token(const token_request& req);

/// The Unix time now, in seconds.
std::int64_t unix_now();

/// tokens.db. Not thread-safe. Throws std::runtime_error naming the file when
/// SQLite fails or the file is not a token store.
class token_store {
 public:
  /// Opens `path`; with `create`, creates it (and its directory) if missing.
  /// A new file created by root in a directory another user owns is given to
  /// that user, so that the service running as that user can write it.
  token_store(std::filesystem::path path, bool create);
  ~token_store();
  token_store(token_store&&) noexcept;
  token_store& operator=(token_store&&) noexcept;

  /// Adds a token and returns it (the only time it is ever seen) with its
  /// record. Throws std::invalid_argument for a bad name or subdomain, or a
  /// subdomain another token reserved (naming that token).
  std::pair<std::string, token_record> add(const token_request& req);

  /// Every token, oldest first.
  std::vector<token_record> list();

  /// The token `token` hashes to, if any.
  std::optional<token_record> lookup(std::string_view token);

  /// Removes token `id` and its reservations; false if there is none.
  bool revoke(std::int64_t id);

  /// True once any token was ever added (even if all are revoked since):
  /// the server then requires one.
  bool ever_had_tokens();

  /// True if another connection changed the file since the last call
  /// (PRAGMA data_version: no read of the file's pages).
  bool changed();

  /// Records that token `id` was used at `when` (Unix seconds). Does not
  /// wait for a lock another process holds: false if it could not write.
  bool touch(std::int64_t id, std::int64_t when);

  const std::filesystem::path& path() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace porthole::server
