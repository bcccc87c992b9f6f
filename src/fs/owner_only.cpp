#include "fs/owner_only.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace porthole::fs {

std::error_code create_owner_only_directories(const std::filesystem::path& dir) {
  std::filesystem::path partial;
  for (const auto& part : dir) {
    partial /= part;
    std::error_code ec;
    if (std::filesystem::exists(partial, ec)) {
      continue;
    }
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      return {errno, std::generic_category()};
    }
  }
  return {};
}

void create_owner_only_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
  }
}

void narrow_to_owner(const std::filesystem::path& path, std::string_view why) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 077) == 0) {
    return;
  }
  const mode_t was = st.st_mode & 07777;
  const mode_t now = was & ~mode_t{077};
  if (::chmod(path.c_str(), now) != 0) {
    spdlog::warn("{}: mode {:04o} lets other local users in ({}), and it cannot be narrowed: {}",
                 path.string(), was, why, std::strerror(errno));
    return;
  }
  spdlog::warn("{}: narrowed its mode from {:04o} to {:04o} ({})", path.string(), was, now, why);
}

void warn_if_others_can_read(const std::filesystem::path& path, std::string_view why) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 044) != 0) {
    spdlog::warn("{}: other local users can read it (mode {:04o}) and {}; chmod 600 {}",
                 path.string(), st.st_mode & 07777, why, path.string());
  }
}

}  // namespace porthole::fs
