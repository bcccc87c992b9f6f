#include "server/token_store.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>

#include "server/tunnel.h"

namespace porthole::server {
namespace {

// "PHTK": marks a database as a porthole token store.
constexpr int application_id = 0x5048544b;
constexpr int schema_version = 1;

// AUTOINCREMENT: a revoked token's id is never given to a new one, so an id
// in a log line or a script names one token for good; sqlite_sequence also
// tells that a token was ever added.
constexpr const char* schema_sql = R"sql(
CREATE TABLE token (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  hash BLOB NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  max_tunnels INTEGER,
  max_tcp_ports INTEGER,
  max_conns INTEGER,
  created INTEGER NOT NULL,
  last_used INTEGER
);
CREATE TABLE reservation (
  subdomain TEXT PRIMARY KEY,
  token_id INTEGER NOT NULL REFERENCES token(id) ON DELETE CASCADE
);
CREATE INDEX reservation_by_token ON reservation(token_id);
)sql";

constexpr std::string_view token_prefix = "ph_";
constexpr std::size_t shown_prefix = 9;  // "ph_" and 6 hex digits: 24 of 192 bits

struct database_closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct statement_finalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::string hash_token(std::string_view token) {
  std::string digest(32, '\0');
  unsigned int size = 0;
  if (EVP_Digest(token.data(), token.size(), reinterpret_cast<unsigned char*>(digest.data()), &size,
                 EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  }
  return digest;
}

std::string generate_token() {
  unsigned char raw[24];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    throw std::runtime_error("the system's random number generator failed");
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string token(token_prefix);
  for (unsigned char c : raw) {
    token += digits[c >> 4];
    token += digits[c & 0xf];
  }
  return token;
}

bool valid_token_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || !std::isalpha(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
           c == '@';
  });
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::pair<std::string, token_record> make_token(const token_request& req) {
  if (!req.name.empty() && !valid_token_name(req.name)) {
    throw std::invalid_argument("the name '" + req.name +
                                "' is not valid: 1 to 64 letters, digits and . - _ @, starting "
                                "with a letter");
  }
  token_record r;
  for (const std::string& s : req.subdomains) {
    if (!valid_subdomain(s)) {
      throw std::invalid_argument("the subdomain '" + s +
                                  "' is not valid: one DNS label of 1 to 63 letters, digits and "
                                  "'-', not starting or ending with '-'");
    }
    const std::string name = lower(s);
    if (std::find(r.subdomains.begin(), r.subdomains.end(), name) == r.subdomains.end()) {
      r.subdomains.push_back(name);
    }
  }
  std::sort(r.subdomains.begin(), r.subdomains.end());
  std::string token = generate_token();
  r.name = req.name;
  r.prefix = token.substr(0, shown_prefix);
  r.hash = hash_token(token);
  r.max_tunnels = req.max_tunnels;
  r.max_tcp_ports = req.max_tcp_ports;
  r.max_conns = req.max_conns;
  r.created = unix_now();
  return {std::move(token), std::move(r)};
}

struct token_store::impl {
  std::filesystem::path path;
  std::unique_ptr<sqlite3, database_closer> db;
  std::int64_t data_version = -1;

  [[noreturn]] void fail(std::string_view what) const {
    throw std::runtime_error("token store " + path.string() + ": " + std::string(what) + ": " +
                             (db ? sqlite3_errmsg(db.get()) : "out of memory"));
  }

  class statement {
   public:
    statement(impl& owner, std::string_view sql) : owner_(owner) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(owner.db.get(), sql.data(), static_cast<int>(sql.size()), &s,
                             nullptr) != SQLITE_OK) {
        owner.fail("preparing a statement");
      }
      stmt_.reset(s);
    }
    statement& bind(int i, std::int64_t v) {
      check(sqlite3_bind_int64(stmt_.get(), i, v));
      return *this;
    }
    statement& bind(int i, std::string_view v) {
      check(sqlite3_bind_text64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
      return *this;
    }
    statement& bind_blob(int i, std::string_view v) {
      check(sqlite3_bind_blob64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT));
      return *this;
    }
    statement& bind(int i, std::optional<std::size_t> v) {
      check(v ? sqlite3_bind_int64(stmt_.get(), i, static_cast<std::int64_t>(*v))
              : sqlite3_bind_null(stmt_.get(), i));
      return *this;
    }
    /// True while a row is available.
    bool step() {
      const int rc = sqlite3_step(stmt_.get());
      if (rc == SQLITE_ROW) {
        return true;
      }
      if (rc != SQLITE_DONE) {
        owner_.fail("executing");
      }
      return false;
    }
    /// SQLITE_DONE, SQLITE_BUSY or another result code (not thrown).
    int try_step() { return sqlite3_step(stmt_.get()); }
    std::int64_t integer(int i) { return sqlite3_column_int64(stmt_.get(), i); }
    std::optional<std::int64_t> optional_integer(int i) {
      if (sqlite3_column_type(stmt_.get(), i) == SQLITE_NULL) {
        return std::nullopt;
      }
      return integer(i);
    }
    std::string blob(int i) {
      auto p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), i));
      return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), i)))
               : std::string();
    }
    std::string text(int i) {
      auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), i));
      return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), i)))
               : std::string();
    }

   private:
    void check(int rc) {
      if (rc != SQLITE_OK) {
        owner_.fail("binding a value");
      }
    }
    impl& owner_;
    std::unique_ptr<sqlite3_stmt, statement_finalizer> stmt_;
  };

  void exec(const std::string& sql, std::string_view what) {
    if (sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail(what);
    }
  }

  template <typename Work>
  auto in_transaction(std::string_view what, Work work, const char* begin = "BEGIN IMMEDIATE") {
    exec(begin, what);
    try {
      auto result = work();
      exec("COMMIT", what);
      return result;
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  std::int64_t pragma(std::string_view name) {
    statement s(*this, "PRAGMA " + std::string(name));
    if (!s.step()) {
      fail("reading PRAGMA " + std::string(name));
    }
    return s.integer(0);
  }

  // Root creating the file in the service user's state directory: the
  // service must be able to open it (and SQLite gives its -wal and -shm
  // files the owner of the database file when it runs as root).
  void give_to_directory_owner() {
    if (geteuid() != 0) {
      return;
    }
    struct stat dir {};
    const auto parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    if (::stat(parent.c_str(), &dir) == 0 && dir.st_uid != 0) {
      if (::chown(path.c_str(), dir.st_uid, dir.st_gid) != 0) {
        throw std::runtime_error("token store " + path.string() +
                                 ": cannot give it to the owner of " + parent.string() + ": " +
                                 std::strerror(errno));
      }
    }
  }

  impl(std::filesystem::path p, bool create) : path(std::move(p)) {
    std::error_code ec;
    const bool existed = std::filesystem::exists(path, ec);
    if (!existed && !create) {
      throw std::runtime_error("token store " + path.string() + " does not exist");
    }
    if (!existed && path.has_parent_path()) {
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) {
        throw std::runtime_error("token store " + path.string() + ": cannot create directory " +
                                 path.parent_path().string() + ": " + ec.message());
      }
    }
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(
        path.c_str(), &raw,
        SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX, nullptr);
    db.reset(raw);
    if (rc != SQLITE_OK) {
      fail("cannot open");
    }
    if (!existed) {
      ::chmod(path.c_str(), 0600);
      give_to_directory_owner();
    }
    sqlite3_busy_timeout(db.get(), 5000);
    open_schema();
  }

  void open_schema() {
    std::int64_t app_id = 0, version = 0, objects = 0;
    try {
      app_id = pragma("application_id");
      version = pragma("user_version");
      statement s(*this, "SELECT count(*) FROM sqlite_master");
      s.step();
      objects = s.integer(0);
    } catch (const std::runtime_error&) {
      throw std::runtime_error("token store " + path.string() + ": cannot read it (" +
                               sqlite3_errmsg(db.get()) + "); is it a porthole token store?");
    }
    if (objects == 0 && app_id == 0 && version == 0) {
      // WAL: the server reads while `token add` writes, and its own writes
      // (last-used times) do not wait for a disk flush.
      exec("PRAGMA journal_mode=WAL", "switching to WAL");
      in_transaction("creating the schema", [&] {
        exec(schema_sql, "creating the schema");
        exec("PRAGMA application_id=" + std::to_string(application_id), "creating the schema");
        exec("PRAGMA user_version=" + std::to_string(schema_version), "creating the schema");
        return 0;
      });
    } else if (app_id != application_id) {
      throw std::runtime_error("token store " + path.string() +
                               ": is a SQLite database but not a porthole token store");
    } else if (version != schema_version) {
      throw std::runtime_error("token store " + path.string() + ": has schema " +
                               std::to_string(version) + ", this portholed reads " +
                               std::to_string(schema_version));
    }
    exec("PRAGMA synchronous=NORMAL", "setting synchronous");
    exec("PRAGMA foreign_keys=ON", "enabling foreign keys");
    data_version = pragma("data_version");
  }

  std::map<std::int64_t, std::vector<std::string>> reservations() {
    std::map<std::int64_t, std::vector<std::string>> out;
    statement s(*this, "SELECT token_id, subdomain FROM reservation ORDER BY subdomain");
    while (s.step()) {
      out[s.integer(0)].push_back(s.text(1));
    }
    return out;
  }

  static constexpr std::string_view columns =
      "id, name, prefix, max_tunnels, max_tcp_ports, max_conns, created, last_used, hash";

  token_record read(statement& s) {
    token_record r;
    r.id = s.integer(0);
    r.name = s.text(1);
    r.prefix = s.text(2);
    auto size = [&](int i) -> std::optional<std::size_t> {
      auto v = s.optional_integer(i);
      return v ? std::optional<std::size_t>(static_cast<std::size_t>(*v)) : std::nullopt;
    };
    r.max_tunnels = size(3);
    r.max_tcp_ports = size(4);
    r.max_conns = size(5);
    r.created = s.integer(6);
    r.last_used = s.optional_integer(7);
    r.hash = s.blob(8);
    return r;
  }
};

token_store::token_store(std::filesystem::path path, bool create)
    : impl_(std::make_unique<impl>(std::move(path), create)) {}
token_store::~token_store() = default;
token_store::token_store(token_store&&) noexcept = default;
token_store& token_store::operator=(token_store&&) noexcept = default;

const std::filesystem::path& token_store::path() const {
  return impl_->path;
}

std::pair<std::string, token_record> token_store::add(const token_request& req) {
  auto made = make_token(req);
  token_record& r = made.second;
  return impl_->in_transaction("adding a token", [&] {
    for (const std::string& s : r.subdomains) {
      impl::statement q(*impl_,
                        "SELECT t.id, t.name FROM reservation r JOIN token t ON t.id = r.token_id "
                        "WHERE r.subdomain = ?1");
      q.bind(1, s);
      if (q.step()) {
        const std::string holder = q.text(1).empty() ? "" : " '" + q.text(1) + "'";
        throw std::invalid_argument("the subdomain '" + s + "' is already reserved by token " +
                                    std::to_string(q.integer(0)) + holder);
      }
    }
    impl::statement ins(*impl_,
                        "INSERT INTO token (name, hash, prefix, max_tunnels, max_tcp_ports, "
                        "max_conns, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    ins.bind(1, r.name)
        .bind_blob(2, r.hash)
        .bind(3, r.prefix)
        .bind(4, r.max_tunnels)
        .bind(5, r.max_tcp_ports)
        .bind(6, r.max_conns)
        .bind(7, r.created);
    ins.step();
    r.id = sqlite3_last_insert_rowid(impl_->db.get());
    for (const std::string& s : r.subdomains) {
      impl::statement res(*impl_, "INSERT INTO reservation (subdomain, token_id) VALUES (?1, ?2)");
      res.bind(1, s).bind(2, r.id);
      res.step();
    }
    return made;
  });
}

std::vector<token_record> token_store::list() {
  // One read transaction: the tokens and their reservations agree.
  return impl_->in_transaction(
      "listing tokens",
      [&] {
        auto reserved = impl_->reservations();
        std::vector<token_record> out;
        impl::statement s(*impl_,
                          "SELECT " + std::string(impl::columns) + " FROM token ORDER BY id");
        while (s.step()) {
          out.push_back(impl_->read(s));
          out.back().subdomains = std::move(reserved[out.back().id]);
        }
        return out;
      },
      "BEGIN");
}

std::optional<token_record> token_store::lookup(std::string_view token) {
  impl::statement s(*impl_, "SELECT " + std::string(impl::columns) + " FROM token WHERE hash = ?1");
  s.bind_blob(1, hash_token(token));
  if (!s.step()) {
    return std::nullopt;
  }
  token_record r = impl_->read(s);
  impl::statement q(*impl_,
                    "SELECT subdomain FROM reservation WHERE token_id = ?1 ORDER BY subdomain");
  q.bind(1, r.id);
  while (q.step()) {
    r.subdomains.push_back(q.text(0));
  }
  return r;
}

bool token_store::revoke(std::int64_t id) {
  return impl_->in_transaction("revoking a token", [&] {
    impl::statement s(*impl_, "DELETE FROM token WHERE id = ?1");
    s.bind(1, id);
    s.step();
    return sqlite3_changes(impl_->db.get()) > 0;
  });
}

bool token_store::ever_had_tokens() {
  impl::statement s(*impl_,
                    "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'token'");
  return s.step() && s.integer(0) > 0;
}

bool token_store::changed() {
  const std::int64_t now = impl_->pragma("data_version");
  return std::exchange(impl_->data_version, now) != now;
}

bool token_store::touch(std::int64_t id, std::int64_t when) {
  sqlite3_busy_timeout(impl_->db.get(), 0);
  impl::statement s(*impl_, "UPDATE token SET last_used = ?2 WHERE id = ?1");
  s.bind(1, id).bind(2, when);
  const int rc = s.try_step();
  sqlite3_busy_timeout(impl_->db.get(), 5000);
  return rc == SQLITE_DONE;
}

}  // namespace porthole::server
