#include "fs/replaced_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace porthole::fs {

namespace {

constexpr mode_t file_mode = 0644;

// Opens `path` for writing, empty and 0644 whatever the umask; -1 and errno on failure.
int create(const std::filesystem::path& path) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, file_mode);
  if (fd >= 0 && ::fchmod(fd, file_mode) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

}  // namespace

replaced_file::replaced_file(std::filesystem::path path)
    : path_(std::move(path)), temporary_(path_.string() + ".tmp") {
  const int fd = create(temporary_);
  if (fd < 0) {
    throw std::runtime_error("cannot create " + temporary_.string() + ": " + std::strerror(errno));
  }
  ::close(fd);
  ::unlink(temporary_.c_str());
  ::unlink(path_.c_str());
}

replaced_file::~replaced_file() {
  remove();
}

std::error_code replaced_file::write(std::string_view text) {
  const int fd = create(temporary_);
  if (fd < 0) {
    return {errno, std::generic_category()};
  }
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const std::error_code ec(errno, std::generic_category());
      ::close(fd);
      ::unlink(temporary_.c_str());
      return ec;
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const std::error_code ec(errno, std::generic_category());
    ::unlink(temporary_.c_str());
    return ec;
  }
  return {};
}

void replaced_file::remove() noexcept {
  ::unlink(temporary_.c_str());
  ::unlink(path_.c_str());
}

}  // namespace porthole::fs
