#include "server/token_source.h"

#include <sys/stat.h>

#include "log/event.h"

namespace porthole::server {

tokens_db_source::tokens_db_source(std::filesystem::path path) : path_(std::move(path)) {}

tokens_db_source::~tokens_db_source() = default;

std::optional<token_snapshot> tokens_db_source::read_changes() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (!store_) {
      return std::nullopt;
    }
    // Removed: its tokens are no more (and its reservations with them).
    store_.reset();
    log::warn("the tokens database was removed: its tokens are no longer accepted",
              {{"path", path_.string()}});
    return token_snapshot{};
  }
  if (!store_ || st.st_dev != dev_ || st.st_ino != ino_) {
    store_.reset();
    store_.emplace(path_, false);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    store_->changed();
  } else if (!store_->changed()) {
    return std::nullopt;
  }
  token_snapshot now;
  now.tokens = store_->list();
  now.ever_had_tokens = store_->ever_had_tokens();
  return now;
}

bool tokens_db_source::touch(std::int64_t id, std::int64_t when) {
  return !store_ || store_->touch(id, when);
}

}  // namespace porthole::server
