#include "term/terminal.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "term/crash.h"
#include "term/terminfo.h"

namespace porthole::term {

namespace {

// The alternate screen (the shell's screen is kept), no cursor, no wrapping
// at the last column; and back.
constexpr std::string_view enter_screen = "\x1b[?1049h\x1b[?25l\x1b[?7l\x1b[H\x1b[2J";
constexpr std::string_view leave_screen = "\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l";

bool same_terminal(int a, int b) {
  struct stat sa {};
  struct stat sb {};
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && S_ISCHR(sa.st_mode) &&
         sa.st_rdev == sb.st_rdev;
}

}  // namespace

bool can_draw_on(int fd) {
  if (isatty(fd) == 0) {
    return false;
  }
  const char* t = std::getenv("TERM");
  if (t == nullptr || *t == '\0' || std::strcmp(t, "dumb") == 0) {
    return false;
  }
  return tcgetpgrp(fd) == getpgrp();
}

bool shows_colour(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour != nullptr && *no_colour != '\0') {
    return false;
  }
  return terminfo_colours(fd) >= 8;
}

terminal::terminal(int out_fd, int keys_fd)
    : out_fd_(out_fd),
      keys_fd_(keys_fd >= 0 && isatty(keys_fd) != 0 && same_terminal(out_fd, keys_fd) ? keys_fd
                                                                                      : -1),
      modes_fd_(-1) {
  termios modes{};
  if (tcgetattr(out_fd_, &modes) == 0) {
    saved_ = modes;
    modes_fd_ = out_fd_;
    // The crash report must find the modes saved before they change.
    guard_terminal(out_fd_, &saved_, leave_screen);
    if (keys_fd_ >= 0) {
      modes.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | ISIG | IEXTEN);
      modes.c_iflag &= ~static_cast<tcflag_t>(IXON | ICRNL);
      modes.c_cc[VMIN] = 1;
      modes.c_cc[VTIME] = 0;
      tcsetattr(out_fd_, TCSANOW, &modes);
    }
  } else {
    keys_fd_ = -1;
    guard_terminal(out_fd_, nullptr, leave_screen);
  }
  write(enter_screen);
}

terminal::~terminal() {
  write(leave_screen);
  if (modes_fd_ >= 0) {
    tcsetattr(modes_fd_, TCSANOW, &saved_);
  }
  release_terminal();
}

screen_size terminal::size() const {
  winsize ws{};
  if (ioctl(out_fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    return {ws.ws_col, ws.ws_row};
  }
  return {};
}

bool terminal::write(std::string_view bytes) const {
  return write_to_terminal(out_fd_, bytes);
}

}  // namespace porthole::term
