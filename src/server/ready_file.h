#pragma once
// What portholed's --ready-file says once the server is ready: where it
// listens, as JSON, for programs that start it (tests, scripts, supervisors)
// instead of reading its log. The shape is in docs/CONFIG.md.

#include <filesystem>
#include <optional>
#include <string>

#include "server/server.h"

namespace porthole::server {

/// Everything the ready file says.
struct ready_facts {
  long pid = 0;
  std::string domain;
  listener_addresses addresses;
  std::optional<std::filesystem::path> dev_ca;  ///< the CA clients must trust, with --dev
  std::string version;
};

/// The facts of `srv`, started, in this process.
ready_facts ready_facts_of(const server& srv);

/// The file's text: one JSON object, on one line. A disabled listener, and a
/// missing dev CA, are null.
std::string ready_file_json(const ready_facts& facts);

}  // namespace porthole::server
