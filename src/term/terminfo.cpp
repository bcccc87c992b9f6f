#include "term/terminfo.h"

#include <curses.h>
#include <term.h>

namespace porthole::term {

int terminfo_colours(int fd) {
  int err = 0;
  if (setupterm(nullptr, fd, &err) != OK) {
    return 0;
  }
  const int n = tigetnum(const_cast<char*>("colors"));
  del_curterm(cur_term);
  return n > 0 ? n : 0;
}

}  // namespace porthole::term
