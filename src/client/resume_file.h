#pragma once
// The client id a server gave, kept across runs of the same client, so that a
// client started again after a crash resumes its session: the server holds a
// lost client's URLs for it during the reconnect grace period, and gives them
// back to the same client id (random names included). "The same client" is
// the same server address and the same tunnels; the file is locked while the
// client runs, so a second client started alike at the same time gets an id
// of its own rather than taking over the first one's session.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "client/config.h"

namespace porthole::client {

/// Names the file of a client: a digest of its server address and tunnels.
std::string resume_key(std::string_view server_addr, const std::vector<tunnel_spec>& tunnels);

/// One client's file, <dir>/<key>.id, locked while this object lives.
class resume_file {
 public:
  /// Opens (creating `dir` if needed) and locks the file. Not usable (usable()
  /// false, client_id() empty, save() does nothing) if it cannot be opened or
  /// another running client holds it; `why` then says so, for a debug log.
  resume_file(const std::filesystem::path& dir, std::string_view key);
  ~resume_file();
  resume_file(const resume_file&) = delete;
  resume_file& operator=(const resume_file&) = delete;

  bool usable() const { return fd_ >= 0; }
  const std::string& why_not() const { return why_; }

  /// The id saved by an earlier run; empty if none.
  const std::string& client_id() const { return id_; }

  /// Keeps `id` for the next run (if it changed).
  void save(const std::string& id);

 private:
  int fd_ = -1;
  std::string id_;
  std::string why_;
};

}  // namespace porthole::client
