#include "inspect/text.h"

#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace porthole::inspect {

bool is_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int more = 0;
    unsigned char low = 0x80, high = 0xbf;  // the bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      more = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      low = c == 0xe0 ? 0xa0 : 0x80;   // no overlong forms
      high = c == 0xed ? 0x9f : 0xbf;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
      low = c == 0xf0 ? 0x90 : 0x80;   // no overlong forms
      high = c == 0xf4 ? 0x8f : 0xbf;  // nothing above U+10FFFF
    } else {
      return false;
    }
    if (end - p <= more) {
      return false;
    }
    if (p[1] < low || p[1] > high) {
      return false;
    }
    for (int i = 2; i <= more; ++i) {
      if (p[i] < 0x80 || p[i] > 0xbf) {
        return false;
      }
    }
    p += more + 1;
  }
  return true;
}

std::string iso8601(std::chrono::sys_time<std::chrono::milliseconds> t) {
  const auto ms = t.time_since_epoch().count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[32];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ms % 1000));
  return std::string(text, n) + millis;
}

}  // namespace porthole::inspect
