#include "net/sd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

using porthole::net::sd_notify;

// A datagram socket standing in for systemd's notification socket.
class notify_socket {
 public:
  explicit notify_socket(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    if (name_[0] == '@') {
      addr.sun_path[0] = '\0';
    }
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0;
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~notify_socket() {
    ::close(fd_);
    if (name_[0] == '/') {
      std::filesystem::remove(name_);
    }
  }
  bool bound() const { return bound_; }
  std::string receive() const {
    char buf[256];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST(SdNotify, WithoutNotifySocketTellsNobody) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(sd_notify("READY=1"));
}

TEST(SdNotify, SendsTheStateToAPathSocket) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("sd-notify-" + std::to_string(::getpid())))
          .string();
  notify_socket sock(path);
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(sd_notify("READY=1"));
  EXPECT_EQ(sock.receive(), "READY=1");
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(SdNotify, SendsTheStateToAnAbstractSocket) {
  const std::string name = "@porthole-sd-notify-" + std::to_string(::getpid());
  notify_socket sock(name);
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(sd_notify("STOPPING=1"));
  EXPECT_EQ(sock.receive(), "STOPPING=1");
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(SdNotify, ANameThatIsNotASocketAddressIsRefused) {
  ::setenv("NOTIFY_SOCKET", "relative/path", 1);
  EXPECT_FALSE(sd_notify("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");
}

}  // namespace
