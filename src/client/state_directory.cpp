#include "client/state_directory.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "client/config_file.h"

namespace porthole::client {

std::filesystem::path state_directory() {
  return default_config_path().parent_path() / ".porthole";
}

void make_private_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    if (dir.has_parent_path()) {
      std::filesystem::create_directories(dir.parent_path(), ec);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      spdlog::warn("cannot create {}: {}", dir.string(), std::strerror(errno));
    }
    return;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || (st.st_mode & 077) == 0) {
    return;
  }
  const mode_t was = st.st_mode & 07777;
  const mode_t now = was & ~mode_t{077};
  if (::chmod(dir.c_str(), now) != 0) {
    spdlog::warn(
        "{}: other local users can reach the captured traffic and session ids in it "
        "(mode {:04o}) and it cannot be narrowed: {}",
        dir.string(), was, std::strerror(errno));
    return;
  }
  spdlog::warn(
      "{}: narrowed its mode from {:04o} to {:04o} (other local users could reach the "
      "captured traffic and session ids in it)",
      dir.string(), was, now);
}

}  // namespace porthole::client
