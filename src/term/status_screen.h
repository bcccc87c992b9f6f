#pragma once
// The full-screen status view: a thread of its own that draws the board on
// the terminal and reads the keys, so that a slow terminal never holds up the
// network thread.

#include <atomic>
#include <functional>
#include <thread>

#include "term/status_board.h"
#include "term/terminal.h"

namespace porthole::term {

class status_screen {
 public:
  struct options {
    bool colour = false;
    /// Called on the screen's thread when the user presses q or Ctrl-C (once).
    std::function<void()> on_quit;
  };

  /// Takes the terminal on `out_fd` (keys from `keys_fd`, or -1) now and
  /// starts drawing `board`, which must outlive the screen.
  status_screen(status_board& board, int out_fd, int keys_fd, options opts);
  /// Stops drawing and gives the terminal back as it was.
  ~status_screen();
  status_screen(const status_screen&) = delete;
  status_screen& operator=(const status_screen&) = delete;

 private:
  void run();
  void wake();
  void draw();

  status_board& board_;
  options opts_;
  terminal terminal_;
  int wake_read_ = -1;
  int wake_write_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace porthole::term
