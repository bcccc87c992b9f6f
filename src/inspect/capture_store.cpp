#include "inspect/capture_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace porthole::inspect {
namespace {

// "PHOL": marks a database as a porthole capture store.
constexpr int application_id = 0x50484f4c;
// Bump with a migration in open_schema() whenever the schema changes.
constexpr int schema_version = 1;

constexpr std::string_view schema_sql = R"sql(
CREATE TABLE exchange (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tunnel_name TEXT NOT NULL,
  public_url TEXT NOT NULL,
  remote_addr TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  duration_us INTEGER NOT NULL,
  request_method TEXT NOT NULL,
  request_target TEXT NOT NULL,
  request_version TEXT NOT NULL,
  request_headers TEXT NOT NULL,
  request_body BLOB NOT NULL,
  request_body_size INTEGER NOT NULL,
  request_body_truncated INTEGER NOT NULL,
  response_status INTEGER,
  response_reason TEXT,
  response_version TEXT,
  response_headers TEXT,
  response_body BLOB,
  response_body_size INTEGER,
  response_body_truncated INTEGER,
  replay_of INTEGER,
  ws_messages_in INTEGER,
  ws_messages_out INTEGER,
  ws_bytes_in INTEGER,
  ws_bytes_out INTEGER,
  error TEXT NOT NULL
);
CREATE INDEX exchange_by_tunnel ON exchange (tunnel_name, id);
)sql";

// The columns of every SELECT, in the order read_exchange() reads them.
#define PORTHOLE_EXCHANGE_COLUMNS                                                       \
  "id, tunnel_name, public_url, remote_addr, start_ms, duration_us, request_method, "   \
  "request_target, request_version, request_headers, request_body, request_body_size, " \
  "request_body_truncated, response_status, response_reason, response_version, "        \
  "response_headers, response_body, response_body_size, response_body_truncated, "      \
  "replay_of, ws_messages_in, ws_messages_out, ws_bytes_in, ws_bytes_out, error"

struct database_closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using database = std::unique_ptr<sqlite3, database_closer>;

struct statement_finalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

[[noreturn]] void fail(const std::string& path, std::string_view what, sqlite3* db) {
  throw std::runtime_error("capture store " + path + ": " + std::string(what) + ": " +
                           (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

// A prepared statement, reset after each use so it can be used again.
// Text and blobs are bound without copying: they must outlive the step.
class statement {
 public:
  statement(sqlite3* db, const std::string& path, std::string_view sql) : db_(db), path_(&path) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &s, nullptr) != SQLITE_OK) {
      fail(path, "preparing a statement", db);
    }
    stmt_.reset(s);
  }

  sqlite3_stmt* get() const { return stmt_.get(); }

  void bind(int i, std::int64_t v) { check(sqlite3_bind_int64(get(), i, v)); }
  void bind(int i, std::string_view v) {
    check(sqlite3_bind_text64(get(), i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  void bind_blob(int i, std::string_view v) {
    // A zero-length blob, not NULL, for an empty body.
    check(sqlite3_bind_blob64(get(), i, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC));
  }
  void bind_null(int i) { check(sqlite3_bind_null(get(), i)); }
  template <typename T>
  void bind_optional(int i, const std::optional<T>& v) {
    if (v) {
      bind(i, static_cast<std::int64_t>(*v));
    } else {
      bind_null(i);
    }
  }

  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(get());
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc != SQLITE_DONE) {
      fail(*path_, "executing", db_);
    }
    return false;
  }

  void reset() {
    sqlite3_reset(get());
    sqlite3_clear_bindings(get());
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) {
      fail(*path_, "binding a value", db_);
    }
  }

  sqlite3* db_;
  const std::string* path_;
  std::unique_ptr<sqlite3_stmt, statement_finalizer> stmt_;
};

// Resets a statement on every way out of a scope.
class in_use {
 public:
  explicit in_use(statement& s) : s_(s) {}
  ~in_use() { s_.reset(); }
  in_use(const in_use&) = delete;
  in_use& operator=(const in_use&) = delete;

 private:
  statement& s_;
};

std::string column_text(sqlite3_stmt* s, int i) {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p != nullptr ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
                      : std::string();
}

std::string column_blob(sqlite3_stmt* s, int i) {
  auto p = static_cast<const char*>(sqlite3_column_blob(s, i));
  return p != nullptr ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
                      : std::string();
}

std::int64_t column_int(sqlite3_stmt* s, int i) {
  return sqlite3_column_int64(s, i);
}

bool column_is_null(sqlite3_stmt* s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL;
}

// Headers as a JSON array of [name, value] pairs, which keeps order and
// repeats. Bytes that are not UTF-8 become U+FFFD rather than fail a capture.
std::string headers_to_json(const header_list& headers) {
  auto array = nlohmann::json::array();
  for (const auto& [name, value] : headers) {
    array.push_back({name, value});
  }
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

header_list headers_from_json(const std::string& path, const std::string& text) {
  auto array = nlohmann::json::parse(text, nullptr, false);
  if (!array.is_array()) {
    throw std::runtime_error("capture store " + path + ": stored headers are not a JSON array");
  }
  header_list headers;
  headers.reserve(array.size());
  for (const auto& field : array) {
    if (!field.is_array() || field.size() != 2 || !field[0].is_string() || !field[1].is_string()) {
      throw std::runtime_error("capture store " + path + ": a stored header is not a pair");
    }
    headers.emplace_back(field[0].get<std::string>(), field[1].get<std::string>());
  }
  return headers;
}

}  // namespace

struct capture_store::impl {
  std::string path;
  std::int64_t keep;
  database db;
  std::optional<statement> begin, commit, rollback, insert, prune, select_one, select_some,
      delete_all, count_all;

  impl(std::string p, std::size_t k) : path(std::move(p)) {
    if (path.empty()) {
      throw std::invalid_argument("capture store: the path is empty (use \":memory:\")");
    }
    if (k == 0) {
      throw std::invalid_argument("capture store " + path + ": keep must be at least 1");
    }
    keep = static_cast<std::int64_t>(
        std::min<std::size_t>(k, std::numeric_limits<std::int64_t>::max()));
    bool in_memory = path == ":memory:";
    if (!in_memory) {
      auto dir = std::filesystem::path(path).parent_path();
      std::error_code ec;
      if (!dir.empty()) {
        std::filesystem::create_directories(dir, ec);
      }
      if (ec) {
        throw std::runtime_error("capture store " + path + ": cannot create directory " +
                                 dir.string() + ": " + ec.message());
      }
    }
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    db.reset(raw);
    if (rc != SQLITE_OK) {
      fail(path, "cannot open", db.get());
    }
    sqlite3_busy_timeout(db.get(), 5000);
    open_schema(in_memory);
    prepare();
  }

  void exec(std::string_view sql, std::string_view what) {
    if (sqlite3_exec(db.get(), std::string(sql).c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail(path, what, db.get());
    }
  }

  std::int64_t pragma(std::string_view name) {
    statement s(db.get(), path, "PRAGMA " + std::string(name));
    if (!s.step()) {
      fail(path, "reading PRAGMA " + std::string(name), db.get());
    }
    return column_int(s.get(), 0);
  }

  void open_schema(bool in_memory) {
    // The first read of the file: SQLite reports a file that is not a
    // database only here.
    std::int64_t app_id = 0, version = 0, objects = 0;
    try {
      app_id = pragma("application_id");
      version = pragma("user_version");
      statement s(db.get(), path, "SELECT count(*) FROM sqlite_master");
      s.step();
      objects = column_int(s.get(), 0);
    } catch (const std::runtime_error&) {
      throw std::runtime_error("capture store " + path + ": cannot read it (" +
                               sqlite3_errmsg(db.get()) + "); is it a porthole capture store?");
    }
    if (objects == 0 && app_id == 0 && version == 0) {
      if (!in_memory) {
        exec("PRAGMA journal_mode=WAL", "switching to WAL");
      }
      exec("BEGIN IMMEDIATE", "creating the schema");
      try {
        exec(schema_sql, "creating the schema");
        exec("PRAGMA application_id=" + std::to_string(application_id), "creating the schema");
        exec("PRAGMA user_version=" + std::to_string(schema_version), "creating the schema");
        exec("COMMIT", "creating the schema");
      } catch (...) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    } else if (app_id != application_id) {
      throw std::runtime_error("capture store " + path +
                               ": is a SQLite database but not a porthole capture store");
    } else if (version > schema_version) {
      throw std::runtime_error("capture store " + path + ": written by a newer porthole (schema " +
                               std::to_string(version) + ", this one reads up to " +
                               std::to_string(schema_version) + ")");
    } else if (version != schema_version) {
      throw std::runtime_error("capture store " + path + ": unknown schema version " +
                               std::to_string(version));
    }
    if (!in_memory) {
      exec("PRAGMA journal_mode=WAL", "switching to WAL");
      // In WAL mode a crash may lose the last commits but never corrupts.
      exec("PRAGMA synchronous=NORMAL", "setting synchronous");
    }
  }

  void prepare() {
    sqlite3* d = db.get();
    begin.emplace(d, path, "BEGIN IMMEDIATE");
    commit.emplace(d, path, "COMMIT");
    rollback.emplace(d, path, "ROLLBACK");
    insert.emplace(d, path,
                   "INSERT INTO exchange (" PORTHOLE_EXCHANGE_COLUMNS
                   ") VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                   "?, ?, ?, ?)");
    // Ids only grow by one per insert, so the newest `keep` are those above
    // the last id minus keep. (Finding the keep-th newest with OFFSET walked
    // the table's pages, bodies included, on every insert.)
    prune.emplace(d, path, "DELETE FROM exchange WHERE id <= ?1");
    select_one.emplace(d, path, "SELECT " PORTHOLE_EXCHANGE_COLUMNS " FROM exchange WHERE id = ?1");
    select_some.emplace(d, path,
                        "SELECT " PORTHOLE_EXCHANGE_COLUMNS
                        " FROM exchange WHERE ?1 IS NULL OR tunnel_name = ?1 "
                        "ORDER BY id DESC LIMIT ?2");
    delete_all.emplace(d, path, "DELETE FROM exchange");
    count_all.emplace(d, path, "SELECT count(*) FROM exchange");
  }

  void run(statement& s) {
    in_use guard(s);
    s.step();
  }

  exchange read_exchange(sqlite3_stmt* s) {
    exchange e;
    e.id = column_int(s, 0);
    e.tunnel_name = column_text(s, 1);
    e.public_url = column_text(s, 2);
    e.remote_addr = column_text(s, 3);
    e.start = std::chrono::sys_time<std::chrono::milliseconds>(
        std::chrono::milliseconds(column_int(s, 4)));
    e.duration = std::chrono::microseconds(column_int(s, 5));
    e.request.method = column_text(s, 6);
    e.request.target = column_text(s, 7);
    e.request.version = column_text(s, 8);
    e.request.headers = headers_from_json(path, column_text(s, 9));
    e.request.body.bytes = column_blob(s, 10);
    e.request.body.size = static_cast<std::uint64_t>(column_int(s, 11));
    e.request.body.truncated = column_int(s, 12) != 0;
    if (!column_is_null(s, 13)) {
      auto& r = e.response.emplace();
      r.status = static_cast<int>(column_int(s, 13));
      r.reason = column_text(s, 14);
      r.version = column_text(s, 15);
      r.headers = headers_from_json(path, column_text(s, 16));
      r.body.bytes = column_blob(s, 17);
      r.body.size = static_cast<std::uint64_t>(column_int(s, 18));
      r.body.truncated = column_int(s, 19) != 0;
    }
    if (!column_is_null(s, 20)) {
      e.replay_of = column_int(s, 20);
    }
    if (!column_is_null(s, 21)) {
      auto& w = e.websocket.emplace();
      w.messages_in = static_cast<std::uint64_t>(column_int(s, 21));
      w.messages_out = static_cast<std::uint64_t>(column_int(s, 22));
      w.bytes_in = static_cast<std::uint64_t>(column_int(s, 23));
      w.bytes_out = static_cast<std::uint64_t>(column_int(s, 24));
    }
    e.error = column_text(s, 25);
    return e;
  }

  // One INSERT, inside the caller's transaction; returns the new id.
  std::int64_t insert_row(const exchange& e) {
    {
      std::string request_headers = headers_to_json(e.request.headers);
      std::string response_headers = e.response ? headers_to_json(e.response->headers) : "";
      statement& s = *insert;
      {
        in_use guard(s);
        int i = 1;
        s.bind(i++, e.tunnel_name);
        s.bind(i++, e.public_url);
        s.bind(i++, e.remote_addr);
        s.bind(i++, static_cast<std::int64_t>(e.start.time_since_epoch().count()));
        s.bind(i++, static_cast<std::int64_t>(e.duration.count()));
        s.bind(i++, e.request.method);
        s.bind(i++, e.request.target);
        s.bind(i++, e.request.version);
        s.bind(i++, request_headers);
        s.bind_blob(i++, e.request.body.bytes);
        s.bind(i++, static_cast<std::int64_t>(e.request.body.size));
        s.bind(i++, std::int64_t{e.request.body.truncated});
        if (const auto& r = e.response) {
          s.bind(i++, std::int64_t{r->status});
          s.bind(i++, r->reason);
          s.bind(i++, r->version);
          s.bind(i++, response_headers);
          s.bind_blob(i++, r->body.bytes);
          s.bind(i++, static_cast<std::int64_t>(r->body.size));
          s.bind(i++, std::int64_t{r->body.truncated});
        } else {
          for (int end = i + 7; i < end; ++i) {
            s.bind_null(i);
          }
        }
        s.bind_optional(i++, e.replay_of);
        if (const auto& w = e.websocket) {
          s.bind(i++, static_cast<std::int64_t>(w->messages_in));
          s.bind(i++, static_cast<std::int64_t>(w->messages_out));
          s.bind(i++, static_cast<std::int64_t>(w->bytes_in));
          s.bind(i++, static_cast<std::int64_t>(w->bytes_out));
        } else {
          for (int end = i + 4; i < end; ++i) {
            s.bind_null(i);
          }
        }
        s.bind(i++, e.error);
        s.step();
      }
    }
    return sqlite3_last_insert_rowid(db.get());
  }

  // The batch in one transaction, pruned once: a commit per exchange would
  // cost more than the capture itself under load.
  std::vector<std::int64_t> add(std::span<const exchange> batch) {
    std::vector<std::int64_t> ids;
    ids.reserve(batch.size());
    run(*begin);
    try {
      for (const exchange& e : batch) {
        ids.push_back(insert_row(e));
      }
      if (!ids.empty()) {
        in_use guard(*prune);
        prune->bind(1, ids.back() - static_cast<std::int64_t>(keep));
        prune->step();
      }
      run(*commit);
      return ids;
    } catch (...) {
      // A failed COMMIT may leave the transaction open; a failed ROLLBACK
      // (none open) is harmless.
      sqlite3_step(rollback->get());
      rollback->reset();
      throw;
    }
  }
};

capture_store::capture_store(std::string path, std::size_t keep)
    : impl_(std::make_unique<impl>(std::move(path), keep)) {}
capture_store::~capture_store() = default;
capture_store::capture_store(capture_store&&) noexcept = default;
capture_store& capture_store::operator=(capture_store&&) noexcept = default;

std::int64_t capture_store::add(const exchange& e) {
  return impl_->add(std::span(&e, 1)).front();
}

std::vector<std::int64_t> capture_store::add(std::span<const exchange> batch) {
  return impl_->add(batch);
}

std::optional<exchange> capture_store::get(std::int64_t id) {
  statement& s = *impl_->select_one;
  in_use guard(s);
  s.bind(1, id);
  if (!s.step()) {
    return std::nullopt;
  }
  return impl_->read_exchange(s.get());
}

std::vector<exchange> capture_store::list(std::size_t limit,
                                          std::optional<std::string> tunnel_name) {
  statement& s = *impl_->select_some;
  in_use guard(s);
  if (tunnel_name) {
    s.bind(1, *tunnel_name);
  } else {
    s.bind_null(1);
  }
  s.bind(2, static_cast<std::int64_t>(
                std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
  std::vector<exchange> found;
  while (s.step()) {
    found.push_back(impl_->read_exchange(s.get()));
  }
  return found;
}

void capture_store::clear() {
  impl_->run(*impl_->delete_all);
}

std::size_t capture_store::count() {
  statement& s = *impl_->count_all;
  in_use guard(s);
  s.step();
  return static_cast<std::size_t>(column_int(s.get(), 0));
}

const std::string& capture_store::path() const {
  return impl_->path;
}

}  // namespace porthole::inspect
