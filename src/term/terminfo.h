#pragma once
// What the terminfo database says of a terminal. Kept apart: <term.h> defines
// macros with common names (lines, columns) that no other file should see.

namespace porthole::term {

/// The number of colours the terminal named by TERM shows, from terminfo;
/// 0 when TERM is unset, unknown to terminfo, or shows none.
int terminfo_colours(int fd);

}  // namespace porthole::term
