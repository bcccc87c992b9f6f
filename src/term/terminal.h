#pragma once
// The terminal the status screen draws on: its modes, its size, whether it
// shows colours, and putting all of it back.

#include <termios.h>

#include <string_view>

namespace porthole::term {

/// A terminal's size in character cells.
struct screen_size {
  int cols = 80;
  int rows = 24;
};

/// True when `fd` is a terminal that a full-screen view can use: a terminal,
/// TERM set and not "dumb", and this process in its foreground (a background
/// job that changed the modes would be stopped).
bool can_draw_on(int fd);

/// True when the terminal on `fd` shows colours (terminfo says 8 or more) and
/// NO_COLOR is unset or empty (https://no-color.org).
bool shows_colour(int fd);

/// Holds a terminal for a full-screen view, from construction to destruction:
/// the alternate screen (the shell's screen is left as it was), no cursor, and
/// with `keys_fd` a terminal too, keys read one at a time and not echoed
/// (Ctrl-C then arrives as a key, not as SIGINT). A crash report puts the
/// terminal back too (see crash.h).
class terminal {
 public:
  /// `out_fd`: where the screen is drawn; `keys_fd`: where keys are read, or -1.
  terminal(int out_fd, int keys_fd);
  ~terminal();
  terminal(const terminal&) = delete;
  terminal& operator=(const terminal&) = delete;

  /// The size now (80x24 when the terminal does not say).
  screen_size size() const;

  /// Writes a frame (false if a crash report has the terminal now).
  bool write(std::string_view bytes) const;

  /// Where keys are read, or -1.
  int keys_fd() const { return keys_fd_; }

 private:
  int out_fd_;
  int keys_fd_;
  int modes_fd_;  // the fd whose modes were changed, or -1
  termios saved_{};
};

}  // namespace porthole::term
