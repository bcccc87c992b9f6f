#pragma once
// The status screen's layout, from a snapshot to the bytes of one frame. Pure:
// no terminal, no clock of its own.

#include <string>
#include <string_view>
#include <vector>

#include "term/status_board.h"
#include "term/terminal.h"

namespace porthole::term {

/// How a run of text is drawn where the terminal shows colours.
enum class style { plain, bold, dim, green, yellow, red, cyan };

/// One line of the screen: runs of text, each with its style. Text is kept
/// printable ASCII: anything else (escape sequences from a request path, say)
/// becomes '?'.
class screen_line {
 public:
  screen_line& add(std::string_view text, style s = style::plain);
  /// Pads with spaces to `width` columns (nothing if already that wide).
  screen_line& pad_to(std::size_t width);

  /// Columns used.
  std::size_t width() const { return width_; }
  /// The text, cut to `cols` columns.
  std::string plain(std::size_t cols) const;
  /// The text with colour sequences (when `colour`), cut to `cols` columns.
  std::string drawn(std::size_t cols, bool colour) const;

 private:
  struct run {
    std::string text;
    style s;
  };
  std::vector<run> runs_;
  std::size_t width_ = 0;
};

/// The lines of the screen for `s` at `now`, at most `size.rows` of them.
std::vector<screen_line> layout(const status_snapshot& s, screen_size size,
                                steady_clock::time_point now);

/// The bytes that draw `lines` over the whole screen, in place.
std::string frame(const std::vector<screen_line>& lines, screen_size size, bool colour);

/// "12 ms", "0.4 ms", "<0.1 ms", "2.5 s".
std::string format_duration(std::chrono::microseconds d);

}  // namespace porthole::term
