#include "inspect/capture_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <span>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "fs/owner_only.h"

namespace porthole::inspect {
namespace {

// "PHOL": marks a database as a porthole capture store.
constexpr int application_id = 0x50484f4c;
// Bump whenever the schema changes; recreate() says what an older file
// becomes. 2: headers as length-prefixed bytes (were JSON text, which lost
// bytes that are not UTF-8), bodies last, no index, no AUTOINCREMENT.
constexpr int schema_version = 2;

// Bodies are the last columns: a row's other columns then sit in its first
// page, and a list without bodies reads neither them nor their overflow pages.
// No secondary index and no AUTOINCREMENT: each would cost a B-tree write per
// stored exchange, and a list reads at most `keep` rows anyway. id_floor holds
// the highest id given out, for when the rows that had it are gone (clear(),
// an older schema's file): ids are never reused.
constexpr std::string_view schema_sql = R"sql(
CREATE TABLE exchange (
  id INTEGER PRIMARY KEY,
  tunnel_name TEXT NOT NULL,
  public_url TEXT NOT NULL,
  remote_addr TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  duration_us INTEGER NOT NULL,
  request_method TEXT NOT NULL,
  request_target TEXT NOT NULL,
  request_version TEXT NOT NULL,
  request_headers BLOB NOT NULL,
  request_body_size INTEGER NOT NULL,
  request_body_truncated INTEGER NOT NULL,
  response_status INTEGER,
  response_reason TEXT,
  response_version TEXT,
  response_headers BLOB,
  response_body_size INTEGER,
  response_body_truncated INTEGER,
  replay_of INTEGER,
  ws_messages_in INTEGER,
  ws_messages_out INTEGER,
  ws_bytes_in INTEGER,
  ws_bytes_out INTEGER,
  error TEXT NOT NULL,
  request_body BLOB NOT NULL,
  response_body BLOB
);
CREATE TABLE id_floor (last_id INTEGER NOT NULL);
INSERT INTO id_floor VALUES (0);
)sql";

// The columns of every SELECT, in the order read_exchange() reads them; the
// bodies, last, only when asked for.
#define PORTHOLE_EXCHANGE_COLUMNS                                                              \
  "id, tunnel_name, public_url, remote_addr, start_ms, duration_us, request_method, "          \
  "request_target, request_version, request_headers, request_body_size, "                      \
  "request_body_truncated, response_status, response_reason, response_version, "               \
  "response_headers, response_body_size, response_body_truncated, replay_of, ws_messages_in, " \
  "ws_messages_out, ws_bytes_in, ws_bytes_out, error"
#define PORTHOLE_BODY_COLUMNS "request_body, response_body"

// Captured traffic holds other people's cookies, tokens and bodies: the
// store's files, and the folders made for them, are for their owner only.
// The database is created 0600 before SQLite opens it: SQLite gives its
// -wal, -shm and -journal files the mode of the database when it makes them.
// Files an older porthole made 0644 are narrowed.
void make_store_files_private(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    fs::narrow_to_owner(path + suffix, "other local users could read the captured traffic");
  }
  fs::create_owner_only_file(path);
}

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

// Headers as bytes: per field, the name's length, the name, the value's
// length, the value; lengths as LEB128 varints. Order, repeats and every byte
// (NUL and invalid UTF-8 included) survive, and nothing is parsed but lengths.
void append_length(std::string& out, std::size_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

void encode_headers(const header_list& headers, std::string& out) {
  out.clear();
  std::size_t size = 0;
  for (const auto& [name, value] : headers) {
    size += name.size() + value.size() + 4;
  }
  out.reserve(size);
  for (const auto& [name, value] : headers) {
    append_length(out, name.size());
    out.append(name);
    append_length(out, value.size());
    out.append(value);
  }
}

std::optional<std::string_view> take_field(std::string_view& in) {
  std::size_t n = 0;
  for (int shift = 0;; shift += 7) {
    if (in.empty() || shift > 56) {
      return std::nullopt;
    }
    const auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    n |= static_cast<std::size_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      break;
    }
  }
  if (n > in.size()) {
    return std::nullopt;
  }
  const std::string_view field = in.substr(0, n);
  in.remove_prefix(n);
  return field;
}

header_list decode_headers(const std::string& path, std::string_view in) {
  header_list headers;
  while (!in.empty()) {
    const auto name = take_field(in);
    const auto value = name ? take_field(in) : std::nullopt;
    if (!value) {
      throw std::runtime_error("capture store " + path + ": stored headers are malformed");
    }
    headers.emplace_back(*name, *value);
  }
  return headers;
}

std::string_view column_bytes(sqlite3_stmt* s, int i) {
  auto p = static_cast<const char*>(sqlite3_column_blob(s, i));
  return p != nullptr ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
                      : std::string_view();
}

}  // namespace

struct capture_store::impl {
  std::string path;
  std::int64_t keep;
  database db;
  std::optional<statement> begin, commit, rollback, insert, prune, select_one, select_some,
      select_some_without_bodies, delete_all, set_id_floor, count_all;
  // The id given to the newest exchange ever stored (0 before the first).
  std::int64_t last_id = 0;
  // Encoded headers of the row being inserted, kept to reuse their memory.
  std::string request_headers, response_headers;

  impl(std::string p, std::size_t k) : path(std::move(p)) {
    if (path.empty()) {
      throw std::invalid_argument("capture store: the path is empty (use \":memory:\")");
    }
    if (k == 0) {
      throw std::invalid_argument("capture store " + path + ": keep must be at least 1");
    }
    keep = static_cast<std::int64_t>(
        std::min<std::uint64_t>(k, std::numeric_limits<std::int64_t>::max()));
    bool in_memory = path == ":memory:";
    if (!in_memory) {
      const auto dir = std::filesystem::path(path).parent_path();
      if (const std::error_code ec = fs::create_owner_only_directories(dir)) {
        throw std::runtime_error("capture store " + path + ": cannot create directory " +
                                 dir.string() + ": " + ec.message());
      }
      make_store_files_private(path);
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
      // Rows are written in batches and read rarely: large pages take fewer
      // log frames, system calls and B-tree splits per row. (Only a new file
      // takes a page size; it is fixed once in WAL mode.)
      exec("PRAGMA page_size=16384", "setting the page size");
      if (!in_memory) {
        exec("PRAGMA journal_mode=WAL", "switching to WAL");
      }
      in_transaction("creating the schema", [&] {
        exec(schema_sql, "creating the schema");
        exec("PRAGMA application_id=" + std::to_string(application_id), "creating the schema");
        exec("PRAGMA user_version=" + std::to_string(schema_version), "creating the schema");
      });
    } else if (app_id != application_id) {
      throw std::runtime_error("capture store " + path +
                               ": is a SQLite database but not a porthole capture store");
    } else if (version > schema_version) {
      throw std::runtime_error("capture store " + path + ": written by a newer porthole (schema " +
                               std::to_string(version) + ", this one reads up to " +
                               std::to_string(schema_version) + ")");
    } else if (version != schema_version) {
      recreate(version);
    }
    // Only this connection writes: a page cache large enough for the pages
    // each batch touches (the newest rows, the oldest being pruned, the
    // B-tree's inner pages) keeps a batch from reading any back.
    exec("PRAGMA cache_size=-16384", "setting the cache size");
    exec("PRAGMA temp_store=MEMORY", "setting temp_store");
    if (!in_memory) {
      exec("PRAGMA journal_mode=WAL", "switching to WAL");
      // In WAL mode a crash may lose the last commits but never corrupts.
      exec("PRAGMA synchronous=NORMAL", "setting synchronous");
      // The log restarts after each checkpoint; this bounds what it keeps on disk.
      exec("PRAGMA journal_size_limit=67108864", "setting journal_size_limit");
    }
  }

  // The captures are a cache: an older porthole's file keeps the highest id it
  // gave (ids are never reused) and loses its rows, which this one cannot read.
  void recreate(std::int64_t old_version) {
    std::int64_t rows = 0;
    std::int64_t old_last_id = 0;
    in_transaction("replacing an older schema", [&] {
      try {
        // Schema 1 numbered rows with AUTOINCREMENT.
        statement s(db.get(), path,
                    "SELECT (SELECT count(*) FROM exchange), (SELECT coalesce(max(seq), 0) FROM "
                    "sqlite_sequence WHERE name = 'exchange')");
        s.step();
        rows = column_int(s.get(), 0);
        old_last_id = column_int(s.get(), 1);
      } catch (const std::runtime_error&) {
        // No exchange table (or no sequence yet): nothing to keep.
      }
      exec("DROP TABLE IF EXISTS exchange", "replacing an older schema");
      exec(schema_sql, "replacing an older schema");
      exec("UPDATE id_floor SET last_id = " + std::to_string(old_last_id),
           "replacing an older schema");
      exec("PRAGMA user_version=" + std::to_string(schema_version), "replacing an older schema");
    });
    spdlog::warn(
        "capture store {}: written by an older porthole (schema {}, this one writes {}); its {} "
        "captured exchange(s) were dropped",
        path, old_version, schema_version, rows);
  }

  template <typename Work>
  void in_transaction(std::string_view what, Work work) {
    exec("BEGIN IMMEDIATE", what);
    try {
      work();
      exec("COMMIT", what);
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void prepare() {
    sqlite3* d = db.get();
    begin.emplace(d, path, "BEGIN IMMEDIATE");
    commit.emplace(d, path, "COMMIT");
    rollback.emplace(d, path, "ROLLBACK");
    insert.emplace(d, path,
                   "INSERT INTO exchange (" PORTHOLE_EXCHANGE_COLUMNS ", " PORTHOLE_BODY_COLUMNS
                   ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                   "?, ?, ?, ?)");
    // Ids only grow by one per insert, so the newest `keep` are those above
    // the last id minus keep. (Finding the keep-th newest with OFFSET walked
    // the table's pages, bodies included, on every insert.)
    prune.emplace(d, path, "DELETE FROM exchange WHERE id <= ?1");
    select_one.emplace(d, path,
                       "SELECT " PORTHOLE_EXCHANGE_COLUMNS ", " PORTHOLE_BODY_COLUMNS
                       " FROM exchange WHERE id = ?1");
    select_some.emplace(d, path,
                        "SELECT " PORTHOLE_EXCHANGE_COLUMNS ", " PORTHOLE_BODY_COLUMNS
                        " FROM exchange WHERE ?1 IS NULL OR tunnel_name = ?1 "
                        "ORDER BY id DESC LIMIT ?2");
    select_some_without_bodies.emplace(d, path,
                                       "SELECT " PORTHOLE_EXCHANGE_COLUMNS
                                       " FROM exchange WHERE ?1 IS NULL OR tunnel_name = ?1 "
                                       "ORDER BY id DESC LIMIT ?2");
    delete_all.emplace(d, path, "DELETE FROM exchange");
    set_id_floor.emplace(d, path, "UPDATE id_floor SET last_id = ?1");
    count_all.emplace(d, path, "SELECT count(*) FROM exchange");
    statement s(d, path,
                "SELECT max((SELECT coalesce(max(id), 0) FROM exchange), "
                "(SELECT last_id FROM id_floor))");
    s.step();
    last_id = column_int(s.get(), 0);
  }

  void run(statement& s) {
    in_use guard(s);
    s.step();
  }

  // A row of a SELECT of PORTHOLE_EXCHANGE_COLUMNS, followed by
  // PORTHOLE_BODY_COLUMNS if `with_bodies`.
  exchange read_exchange(sqlite3_stmt* s, bool with_bodies) {
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
    e.request.headers = decode_headers(path, column_bytes(s, 9));
    e.request.body.size = static_cast<std::uint64_t>(column_int(s, 10));
    e.request.body.truncated = column_int(s, 11) != 0;
    if (with_bodies) {
      e.request.body.bytes = column_blob(s, 24);
    }
    if (!column_is_null(s, 12)) {
      auto& r = e.response.emplace();
      r.status = static_cast<int>(column_int(s, 12));
      r.reason = column_text(s, 13);
      r.version = column_text(s, 14);
      r.headers = decode_headers(path, column_bytes(s, 15));
      r.body.size = static_cast<std::uint64_t>(column_int(s, 16));
      r.body.truncated = column_int(s, 17) != 0;
      if (with_bodies) {
        r.body.bytes = column_blob(s, 25);
      }
    }
    if (!column_is_null(s, 18)) {
      e.replay_of = column_int(s, 18);
    }
    if (!column_is_null(s, 19)) {
      auto& w = e.websocket.emplace();
      w.messages_in = static_cast<std::uint64_t>(column_int(s, 19));
      w.messages_out = static_cast<std::uint64_t>(column_int(s, 20));
      w.bytes_in = static_cast<std::uint64_t>(column_int(s, 21));
      w.bytes_out = static_cast<std::uint64_t>(column_int(s, 22));
    }
    e.error = column_text(s, 23);
    return e;
  }

  // One INSERT, inside the caller's transaction; returns the new id.
  std::int64_t insert_row(const exchange& e) {
    encode_headers(e.request.headers, request_headers);
    if (e.response) {
      encode_headers(e.response->headers, response_headers);
    }
    // Parameter n is column n - 1 of the columns as read_exchange() reads them.
    statement& s = *insert;
    in_use guard(s);
    const std::int64_t id = last_id + 1;
    s.bind(1, id);
    s.bind(2, e.tunnel_name);
    s.bind(3, e.public_url);
    s.bind(4, e.remote_addr);
    s.bind(5, static_cast<std::int64_t>(e.start.time_since_epoch().count()));
    s.bind(6, static_cast<std::int64_t>(e.duration.count()));
    s.bind(7, e.request.method);
    s.bind(8, e.request.target);
    s.bind(9, e.request.version);
    s.bind_blob(10, request_headers);
    s.bind(11, static_cast<std::int64_t>(e.request.body.size));
    s.bind(12, std::int64_t{e.request.body.truncated});
    s.bind_blob(25, e.request.body.bytes);
    if (const auto& r = e.response) {
      s.bind(13, std::int64_t{r->status});
      s.bind(14, r->reason);
      s.bind(15, r->version);
      s.bind_blob(16, response_headers);
      s.bind(17, static_cast<std::int64_t>(r->body.size));
      s.bind(18, std::int64_t{r->body.truncated});
      s.bind_blob(26, r->body.bytes);
    }
    // Parameters left unbound (no response, no replay, no WebSocket) are NULL.
    s.bind_optional(19, e.replay_of);
    if (const auto& w = e.websocket) {
      s.bind(20, static_cast<std::int64_t>(w->messages_in));
      s.bind(21, static_cast<std::int64_t>(w->messages_out));
      s.bind(22, static_cast<std::int64_t>(w->bytes_in));
      s.bind(23, static_cast<std::int64_t>(w->bytes_out));
    }
    s.bind(24, e.error);
    s.step();
    last_id = id;
    return id;
  }

  // The batch in one transaction, pruned once: a commit per exchange would
  // cost more than the capture itself under load.
  std::vector<std::int64_t> add(std::span<const exchange> batch) {
    std::vector<std::int64_t> ids;
    ids.reserve(batch.size());
    const std::int64_t last_id_before = last_id;
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
      last_id = last_id_before;
      throw;
    }
  }

  // Every row goes; the highest id given stays in id_floor.
  void clear() {
    run(*begin);
    try {
      {
        in_use guard(*set_id_floor);
        set_id_floor->bind(1, last_id);
        set_id_floor->step();
      }
      run(*delete_all);
      run(*commit);
    } catch (...) {
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
  return impl_->read_exchange(s.get(), true);
}

std::vector<exchange> capture_store::list(std::size_t limit, std::optional<std::string> tunnel_name,
                                          bool with_bodies) {
  statement& s = with_bodies ? *impl_->select_some : *impl_->select_some_without_bodies;
  in_use guard(s);
  if (tunnel_name) {
    s.bind(1, *tunnel_name);
  } else {
    s.bind_null(1);
  }
  s.bind(2, static_cast<std::int64_t>(
                std::min<std::uint64_t>(limit, std::numeric_limits<std::int64_t>::max())));
  std::vector<exchange> found;
  while (s.step()) {
    found.push_back(impl_->read_exchange(s.get(), with_bodies));
  }
  return found;
}

void capture_store::clear() {
  impl_->clear();
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
