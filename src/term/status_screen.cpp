#include "term/status_screen.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <system_error>

#include "term/crash.h"
#include "term/status_view.h"

namespace porthole::term {

namespace {

// Frames are drawn at most this often, however fast the board changes, and
// at least once a second (for the countdowns and the request rate).
constexpr auto min_frame_interval = std::chrono::milliseconds(50);
constexpr auto max_frame_interval = std::chrono::milliseconds(1000);

// The screen's wake-up pipe, for the SIGWINCH handler (one screen at a time).
std::atomic<int> resize_fd{-1};

void on_resize(int) {
  const int saved_errno = errno;
  const int fd = resize_fd.load();
  if (fd >= 0) {
    const char byte = 'r';
    [[maybe_unused]] const ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved_errno;
}

}  // namespace

status_screen::status_screen(status_board& board, int out_fd, int keys_fd, options opts)
    : board_(board), opts_(std::move(opts)), terminal_(out_fd, keys_fd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::system_error(errno, std::generic_category(), "status screen: pipe");
  }
  wake_read_ = fds[0];
  wake_write_ = fds[1];
  resize_fd.store(wake_write_);
  struct sigaction sa {};
  sa.sa_handler = &on_resize;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGWINCH, &sa, nullptr);
  board_.on_change([this] { wake(); });
  thread_ = std::thread([this] { run(); });
}

status_screen::~status_screen() {
  board_.on_change(nullptr);
  stopping_.store(true);
  wake();
  thread_.join();
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGWINCH, &dfl, nullptr);
  resize_fd.store(-1);
  close(wake_read_);
  close(wake_write_);
}

void status_screen::wake() {
  const char byte = 'w';
  // A full pipe already holds a wake-up.
  [[maybe_unused]] const ssize_t n = ::write(wake_write_, &byte, 1);
}

void status_screen::draw() {
  const screen_size size = terminal_.size();
  const status_snapshot s = board_.snapshot();
  terminal_.write(frame(layout(s, size, steady_clock::now()), size, opts_.colour));
}

void status_screen::run() {
  pthread_setname_np(pthread_self(), "status-screen");
  prepare_thread_for_crash_reports();
  using clock = std::chrono::steady_clock;
  bool quit_sent = false;
  bool dirty = true;
  int keys = terminal_.keys_fd();
  auto last_draw = clock::time_point{};
  while (!stopping_.load()) {
    const auto now = clock::now();
    const auto due = last_draw + (dirty ? min_frame_interval : max_frame_interval);
    if (now >= due) {
      draw();
      last_draw = now;
      dirty = false;
      continue;
    }
    pollfd fds[2] = {{wake_read_, POLLIN, 0}, {keys, POLLIN, 0}};
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(due - now).count();
    const int ready = poll(fds, keys >= 0 ? 2 : 1, static_cast<int>(wait));
    if (ready <= 0) {
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      char drain[64];
      while (::read(wake_read_, drain, sizeof drain) > 0) {
      }
      dirty = true;
    }
    if (keys >= 0 && fds[1].revents != 0) {
      char pressed[64];
      const ssize_t n = ::read(keys, pressed, sizeof pressed);
      if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
        keys = -1;  // the terminal is gone
        continue;
      }
      for (ssize_t i = 0; i < n; ++i) {
        const char c = pressed[i];
        if ((c == 'q' || c == 'Q' || c == '\x03') && !quit_sent && opts_.on_quit) {
          quit_sent = true;
          opts_.on_quit();
        }
      }
    }
  }
}

}  // namespace porthole::term
