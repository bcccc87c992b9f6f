#include "term/status_view.h"

#include <fmt/format.h>

#include <ctime>

namespace porthole::term {

namespace {

constexpr std::size_t label_width = 30;  // as ngrok 1.x lays out its fields
constexpr std::string_view quit_hint = "(q or Ctrl+C to quit)";

// Per request row: the method, then the path (what is left), the status, the duration.
constexpr std::size_t method_width = 8;
constexpr std::size_t status_width = 26;
constexpr std::size_t duration_width = 10;
constexpr std::size_t min_path_width = 12;

const char* sgr(style s) {
  switch (s) {
    case style::plain:
      return "";
    case style::bold:
      return "\x1b[1m";
    case style::dim:
      return "\x1b[2m";
    case style::green:
      return "\x1b[32m";
    case style::yellow:
      return "\x1b[33m";
    case style::red:
      return "\x1b[31m";
    case style::cyan:
      return "\x1b[36m";
  }
  return "";
}

// A label and its value; a value too long for one line goes on in the value
// column of the next ones, broken at spaces where it can be.
void add_field(std::vector<screen_line>& lines, std::size_t cols, std::string_view label,
               std::string_view value, style s = style::plain) {
  constexpr int max_lines = 4;
  const std::size_t room = cols > label_width + 20 ? cols - label_width : 20;
  for (int n = 0; n < max_lines; ++n) {
    std::string_view part = value;
    if (value.size() > room && n + 1 < max_lines) {
      const std::size_t space = value.rfind(' ', room);
      part = value.substr(0, space != std::string_view::npos && space > room / 2 ? space : room);
    }
    screen_line line;
    line.add(n == 0 ? label : "").pad_to(label_width).add(part, s);
    lines.push_back(std::move(line));
    value.remove_prefix(part.size());
    while (value.starts_with(' ')) {
      value.remove_prefix(1);
    }
    if (value.empty()) {
      break;
    }
  }
}

// `text` cut to `width` columns, with "..." where it was cut.
std::string fit(std::string_view text, std::size_t width) {
  if (text.size() <= width) {
    return std::string(text);
  }
  if (width <= 3) {
    return std::string(text.substr(0, width));
  }
  return std::string(text.substr(0, width - 3)) + "...";
}

style status_style(int status) {
  if (status >= 500 || status == 0) {
    return style::red;
  }
  if (status >= 400) {
    return style::yellow;
  }
  if (status >= 300) {
    return style::cyan;
  }
  return style::green;
}

screen_line request_line(const request_row& r, std::size_t cols) {
  const std::size_t fixed = method_width + 1 + status_width + duration_width;
  const std::size_t path_width = cols > fixed + min_path_width ? cols - fixed : min_path_width;
  std::string status = r.status != 0     ? fmt::format("{} {}", r.status, r.reason)
                       : r.error.empty() ? std::string("no response")
                                         : r.error;
  if (!r.protocol.empty()) {
    status += " (" + r.protocol + ")";
  }
  screen_line line;
  line.add(fit(r.method, method_width - 1)).pad_to(method_width);
  line.add(fit(r.target, path_width)).pad_to(method_width + path_width + 1);
  line.add(fit(status, status_width - 1), status_style(r.status));
  line.pad_to(method_width + path_width + 1 + status_width);
  const std::string took = format_duration(r.duration);
  line.pad_to(line.width() + duration_width - std::min(duration_width, took.size()));
  line.add(took, style::dim);
  return line;
}

std::string clock_time(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm local{};
  localtime_r(&secs, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

}  // namespace

screen_line& screen_line::add(std::string_view text, style s) {
  std::string clean(text);
  for (char& c : clean) {
    if (c < 0x20 || c > 0x7e) {
      c = '?';
    }
  }
  width_ += clean.size();
  runs_.push_back({std::move(clean), s});
  return *this;
}

screen_line& screen_line::pad_to(std::size_t width) {
  if (width > width_) {
    add(std::string(width - width_, ' '));
  }
  return *this;
}

std::string screen_line::plain(std::size_t cols) const {
  return drawn(cols, false);
}

std::string screen_line::drawn(std::size_t cols, bool colour) const {
  std::string out;
  std::size_t used = 0;
  for (const run& r : runs_) {
    if (used == cols) {
      break;
    }
    const std::string_view text = std::string_view(r.text).substr(0, cols - used);
    used += text.size();
    if (colour && r.s != style::plain) {
      out += sgr(r.s);
      out += text;
      out += "\x1b[0m";
    } else {
      out += text;
    }
  }
  return out;
}

std::string format_duration(std::chrono::microseconds d) {
  const double us = static_cast<double>(d.count());
  if (us < 100) {
    return "<0.1 ms";
  }
  if (us < 1000) {
    return fmt::format("{:.1f} ms", us / 1000);
  }
  if (us < 1000 * 1000) {
    return fmt::format("{:.0f} ms", us / 1000);
  }
  return fmt::format("{:.1f} s", us / 1e6);
}

std::vector<screen_line> layout(const status_snapshot& s, screen_size size,
                                steady_clock::time_point now) {
  const auto cols = static_cast<std::size_t>(size.cols);
  const auto rows = static_cast<std::size_t>(size.rows);
  std::vector<screen_line> lines;

  screen_line title;
  title.add("porthole", style::bold);
  title.pad_to(cols > quit_hint.size() + title.width() ? cols - quit_hint.size()
                                                       : title.width() + 2);
  title.add(quit_hint, style::dim);
  lines.push_back(std::move(title));
  lines.emplace_back();

  switch (s.state) {
    case link_state::connecting:
      add_field(lines, cols, "Tunnel Status", "connecting", style::yellow);
      break;
    case link_state::online:
      add_field(lines, cols, "Tunnel Status", "online", style::green);
      break;
    case link_state::reconnecting: {
      std::string text = "reconnecting";
      if (s.retry_at > now) {
        const auto secs = std::chrono::ceil<std::chrono::seconds>(s.retry_at - now).count();
        text += fmt::format(" (retry in {}s)", secs);
      }
      add_field(lines, cols, "Tunnel Status", text, style::yellow);
      break;
    }
    case link_state::offline:
      add_field(lines, cols, "Tunnel Status", "offline: " + s.offline_reason, style::red);
      break;
  }
  add_field(lines, cols, "Version",
            s.client_version + "/" + (s.server_version.empty() ? "-" : s.server_version));
  bool http = false;
  for (const forwarding_row& f : s.forwarding) {
    add_field(lines, cols, "Forwarding", f.url + " -> " + f.local);
    http = http || !f.url.starts_with("tcp://");
  }
  for (const refused_row& r : s.refused) {
    add_field(lines, cols, "Refused", fmt::format("{} ({}): {}", r.name, r.protocol, r.error),
              style::red);
  }
  add_field(lines, cols, "Web Interface", s.web_interface.empty() ? "disabled" : s.web_interface);
  add_field(lines, cols, "Connections",
            fmt::format("{} open, {} total", s.open_connections, s.total_connections));
  http = http || s.total_requests > 0;
  if (http) {
    add_field(lines, cols, "Requests",
              fmt::format("{} total, {:.2f}/s over the last minute", s.total_requests,
                          s.requests_per_second));
  }
  if (s.last_problem) {
    add_field(lines, cols, "Last Problem",
              clock_time(s.last_problem->when) + "  " + s.last_problem->text, style::yellow);
  }

  if (http) {
    lines.emplace_back();
    screen_line heading;
    heading.add("HTTP Requests", style::bold);
    lines.push_back(std::move(heading));
    lines.push_back(screen_line().add("-------------"));
    lines.emplace_back();
    if (s.requests.empty()) {
      lines.push_back(screen_line().add("(none yet)", style::dim));
    }
    for (const request_row& r : s.requests) {
      if (lines.size() >= rows) {
        break;
      }
      lines.push_back(request_line(r, cols));
    }
  }
  if (lines.size() > rows) {
    lines.resize(rows);
  }
  return lines;
}

std::string frame(const std::vector<screen_line>& lines, screen_size size, bool colour) {
  const auto cols = static_cast<std::size_t>(size.cols);
  const auto rows = static_cast<std::size_t>(size.rows);
  // Drawn in place from the top left, each line cleared to its end, the rest
  // of the screen cleared below; the terminal shows it whole where it can
  // (synchronized output, ignored elsewhere).
  std::string out = "\x1b[?2026h\x1b[H";
  for (std::size_t i = 0; i < lines.size() && i < rows; ++i) {
    if (i > 0) {
      out += "\r\n";
    }
    out += lines[i].drawn(cols, colour);
    // Not at the last column: the cursor stays on it there, and would erase it.
    if (lines[i].width() < cols) {
      out += "\x1b[K";
    }
  }
  // Below the last line, from the start of the next (the cursor may sit on
  // the last column, which clearing from it would erase).
  if (lines.size() < rows) {
    out += lines.empty() ? "\x1b[J" : "\r\n\x1b[J";
  }
  out += "\x1b[?2026l";
  return out;
}

}  // namespace porthole::term
