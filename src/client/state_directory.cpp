#include "client/state_directory.h"

#include <spdlog/spdlog.h>

#include <string_view>
#include <system_error>

#include "client/config_file.h"
#include "fs/owner_only.h"

namespace porthole::client {

std::filesystem::path state_directory() {
  return default_config_path().parent_path() / ".porthole";
}

void make_private_directory(const std::filesystem::path& dir) {
  constexpr std::string_view why =
      "other local users could reach the captured traffic and session ids in it";
  if (const std::error_code ec = fs::create_owner_only_directories(dir)) {
    spdlog::warn("cannot create {}: {}", dir.string(), ec.message());
    return;
  }
  fs::narrow_to_owner(dir, why);
}

}  // namespace porthole::client
