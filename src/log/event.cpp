#include "log/event.h"

#include <fmt/format.h>
#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <ctime>
#include <utility>

#include "log/logging.h"

namespace porthole::log {

namespace {

// The event being written on this thread, for the JSON formatter: spdlog
// carries only the text of a line, and the fields need their types.
struct current_event {
  std::string_view msg;
  fields f;
  const char* payload;  ///< the text handed to spdlog, to recognise the line
};
thread_local const current_event* current = nullptr;

bool needs_quotes(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (const unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      return true;
    }
  }
  return false;
}

// The escape of a quote, a backslash or a control character, shared by the
// text and JSON forms; `hex` is the form of the other control characters.
void append_escaped(std::string& out, unsigned char c, const char* hex) {
  switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        out += fmt::format(fmt::runtime(hex), c);
      } else {
        out += static_cast<char>(c);
      }
  }
}

void append_quoted(std::string& out, std::string_view v) {
  out += '"';
  for (const unsigned char c : v) {
    append_escaped(out, c, "\\x{:02x}");
  }
  out += '"';
}

// The length of the valid UTF-8 sequence at the start of `s`, or 0.
std::size_t utf8_length(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  unsigned min = 0;
  unsigned cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) {
    return 0;
  }
  for (std::size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (b(i) & 0x3f);
  }
  const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
  return cp < min || cp > 0x10ffff || surrogate ? 0 : n;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // Bytes that are not UTF-8 would make the line invalid JSON.
      if (const std::size_t n = utf8_length(s.substr(i)); n > 0) {
        out.append(s.substr(i, n));
        i += n;
      } else {
        out += "\\ufffd";
        ++i;
      }
      continue;
    }
    append_escaped(out, c, "\\u{:04x}");
    ++i;
  }
  out += '"';
}

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// 2026-12-03T10:20:00.123Z
std::string utc_time(spdlog::log_clock::time_point t) {
  const auto since = t.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

class line_formatter final : public spdlog::formatter {
 public:
  explicit line_formatter(log::format f) : format_(f) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string line;
    if (format_ == log::format::text) {
      line = utc_time(msg.time);
      line += ' ';
      line += level_name(msg.level);
      line += ' ';
      line += payload;
    } else {
      line = "{\"time\":\"" + utc_time(msg.time) + "\",\"level\":\"";
      line += level_name(msg.level);
      line += "\",";
      if (current != nullptr && current->payload == msg.payload.data()) {
        line += render_json_members(current->msg, current->f);
      } else {
        // A line written with spdlog directly: its text is the message.
        line += "\"msg\":";
        append_json_string(line, payload);
      }
      line += '}';
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<line_formatter>(format_);
  }

 private:
  log::format format_;
};

}  // namespace

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

std::string render_text(std::string_view msg, fields f) {
  std::string out(msg);
  for (const field& x : f) {
    if (std::holds_alternative<omitted>(x.value)) {
      continue;
    }
    out += ' ';
    out += x.key;
    out += '=';
    std::visit(
        [&out](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            if (needs_quotes(v)) {
              append_quoted(out, v);
            } else {
              out += v;
            }
          } else if constexpr (std::is_same_v<T, bool>) {
            out += v ? "true" : "false";
          } else if constexpr (!std::is_same_v<T, omitted>) {
            out += fmt::format("{}", v);
          }
        },
        x.value);
  }
  return out;
}

std::string render_json_members(std::string_view msg, fields f) {
  std::string out = "\"msg\":";
  append_json_string(out, msg);
  for (const field& x : f) {
    if (std::holds_alternative<omitted>(x.value)) {
      continue;
    }
    out += ',';
    append_json_string(out, x.key);
    out += ':';
    std::visit(
        [&out](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            append_json_string(out, v);
          } else if constexpr (std::is_same_v<T, bool>) {
            out += v ? "true" : "false";
          } else if constexpr (std::is_same_v<T, double>) {
            // JSON has no NaN or infinity.
            out += std::isfinite(v) ? fmt::format("{}", v) : "null";
          } else if constexpr (!std::is_same_v<T, omitted>) {
            out += fmt::format("{}", v);
          }
        },
        x.value);
  }
  return out;
}

void write(spdlog::level::level_enum level, std::string_view msg, fields f) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) {
    return;
  }
  const std::string text = render_text(msg, f);
  const current_event ev{msg, f, text.data()};
  const current_event* outer = std::exchange(current, &ev);
  logger->log(level, spdlog::string_view_t(text.data(), text.size()));
  current = outer;
}

std::unique_ptr<spdlog::formatter> make_line_formatter(format f) {
  return std::make_unique<line_formatter>(f);
}

}  // namespace porthole::log
