#include "client/resume_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "fs/owner_only.h"

namespace porthole::client {

std::string resume_key(std::string_view server_addr, const std::vector<tunnel_spec>& tunnels) {
  std::string text(server_addr);
  std::vector<std::string> specs;
  for (const tunnel_spec& t : tunnels) {
    specs.push_back(t.key() + '\n' + t.protocol + '\n' + t.local_addr() + '\n' + t.subdomain +
                    '\n' + t.hostname + '\n' + std::to_string(t.remote_port));
  }
  std::sort(specs.begin(), specs.end());
  for (const std::string& s : specs) {
    text += '\0' + s;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string key;
  for (unsigned int i = 0; i < 16 && i < size; ++i) {
    key += hex[digest[i] >> 4];
    key += hex[digest[i] & 0xf];
  }
  return key;
}

resume_file::resume_file(const std::filesystem::path& dir, std::string_view key) {
  // The folder is for its owner only, as the ids in it are. A failure to
  // make it shows as the failure to open the file below.
  (void)fs::create_owner_only_directories(dir);
  const std::filesystem::path path = dir / (std::string(key) + ".id");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    why_ = "cannot open " + path.string() + ": " + std::strerror(errno);
    return;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    why_ = path.string() + " is in use by another running client";
    ::close(fd);
    return;
  }
  fd_ = fd;
  char buf[128];
  const ssize_t n = ::pread(fd_, buf, sizeof buf, 0);
  std::string id(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) {
    id.pop_back();
  }
  // Only what a server could have given (it checks again).
  if (!id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c));
      })) {
    id_ = std::move(id);
  }
}

resume_file::~resume_file() {
  if (fd_ >= 0) {
    ::close(fd_);  // and the lock with it
  }
}

void resume_file::save(const std::string& id) {
  if (fd_ < 0 || id == id_) {
    return;
  }
  const std::string line = id + "\n";
  if (::ftruncate(fd_, 0) == 0 &&
      ::pwrite(fd_, line.data(), line.size(), 0) == static_cast<ssize_t>(line.size())) {
    id_ = id;
  }
}

}  // namespace porthole::client
