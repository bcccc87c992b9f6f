#pragma once
// The captured exchanges on disk (or in memory): a SQLite database holding the
// newest `keep` exchanges, so the inspector's history survives a restart.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "inspect/exchange.h"

namespace porthole::inspect {

/// A SQLite store of exchanges. Not thread-safe: one thread at a time (see
/// capture_writer for the threaded front). Every member but the constructor
/// throws std::runtime_error naming the file when SQLite fails.
class capture_store {
 public:
  /// Opens the store at `path`, a file (created, with its directory, if
  /// missing; journal in WAL mode) or ":memory:" to keep nothing beyond this
  /// object. The file and its -wal, -shm and -journal files are for their
  /// owner only: created 0600 (folders made for them 0700), or narrowed to
  /// it with a warning each when group or others could read them (a folder
  /// that exists is left as it is). Keeps the newest `keep` exchanges (at least 1). A file written
  /// by an older porthole loses its exchanges (logged), not its highest id.
  /// Throws std::invalid_argument for an empty path or `keep` of 0, and
  /// std::runtime_error naming the file when it cannot be opened or created,
  /// is not a porthole capture store, or was written by a newer porthole.
  explicit capture_store(std::string path, std::size_t keep = 1000);
  ~capture_store();
  capture_store(capture_store&&) noexcept;
  capture_store& operator=(capture_store&&) noexcept;
  capture_store(const capture_store&) = delete;
  capture_store& operator=(const capture_store&) = delete;

  /// Stores `e` under a new id (its own `id` is ignored) and returns the id;
  /// in the same transaction removes the oldest exchanges beyond `keep`.
  std::int64_t add(const exchange& e);

  /// Stores a batch in one transaction (pruning once); returns their ids in
  /// order. All or none: on an error nothing of the batch is stored.
  std::vector<std::int64_t> add(std::span<const exchange> batch);

  /// The exchange stored under `id`, or none if there is none (any more).
  std::optional<exchange> get(std::int64_t id);

  /// Up to `limit` exchanges, newest first, only those of `tunnel_name` if
  /// given. Without `with_bodies` no body byte is read: each body's `bytes`
  /// is empty while its `size` and `truncated` are as stored.
  std::vector<exchange> list(std::size_t limit,
                             std::optional<std::string> tunnel_name = std::nullopt,
                             bool with_bodies = true);

  /// Removes every exchange; ids are not reused afterwards.
  void clear();

  /// How many exchanges are stored.
  std::size_t count();

  /// The path given to the constructor.
  const std::string& path() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace porthole::inspect
