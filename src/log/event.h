#pragma once
// Log lines as events: a message for humans, then key=value fields.
//
//   log::info("tunnel opened", {{"url", url}, {"client", id}});
//
// writes, in the text format (logfmt),
//   2026-12-03T10:20:00.123Z info tunnel opened url=http://a.example.com client=3f2a9c1b
// and in the JSON format one object per line,
//   {"time":"2026-12-03T10:20:00.123Z","level":"info","msg":"tunnel opened","url":...}
// The fields are rendered only when the level is enabled.

#include <spdlog/common.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace porthole::log {

/// A field's value that is left out of the line (see if_nonzero).
struct omitted {};

/// One key=value field. It refers to the strings it is given: build fields in
/// the call that logs them (temporaries live until the call returns).
struct field {
  using value_type =
      std::variant<omitted, std::string_view, std::int64_t, std::uint64_t, double, bool>;

  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, bool v) : key(k), value(v) {}
  field(std::string_view k, double v) : key(k), value(v) {}
  field(std::string_view k, omitted) : key(k), value(omitted{}) {}
  field(std::string_view k, value_type v) : key(k), value(v) {}
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>)
  field(std::string_view k, T v) : key(k) {
    if constexpr (std::is_signed_v<T>) {
      value = static_cast<std::int64_t>(v);
    } else {
      value = static_cast<std::uint64_t>(v);
    }
  }

  std::string_view key;
  value_type value;
};

using fields = std::initializer_list<field>;

/// `n`, or nothing when it is 0: for counts worth showing only when there are
/// some, such as the events a log_throttle did not log.
inline field::value_type if_nonzero(std::uint64_t n) {
  if (n == 0) {
    return omitted{};
  }
  return n;
}

/// How lines are written: logfmt text for people, or one JSON object per line.
enum class format { text, json };

/// Writes one event at `level` to the default logger.
void write(spdlog::level::level_enum level, std::string_view msg, fields f = {});

inline void trace(std::string_view msg, fields f = {}) { write(spdlog::level::trace, msg, f); }
inline void debug(std::string_view msg, fields f = {}) { write(spdlog::level::debug, msg, f); }
inline void info(std::string_view msg, fields f = {}) { write(spdlog::level::info, msg, f); }
inline void warn(std::string_view msg, fields f = {}) { write(spdlog::level::warn, msg, f); }
inline void error(std::string_view msg, fields f = {}) { write(spdlog::level::err, msg, f); }

/// `msg` followed by the fields as ` key=value`; a value is quoted, with
/// escapes, when it is empty or holds a space, '"', '=', '\' or a control
/// character. (The text format's line after time and level.)
std::string render_text(std::string_view msg, fields f);

/// The members `"msg":...` and one per field, comma-separated, without
/// braces. (The JSON format's object after time and level.)
std::string render_json_members(std::string_view msg, fields f);

/// `s` as a JSON string literal, quotes included.
std::string json_string(std::string_view s);

}  // namespace porthole::log
