#pragma once
// Where the programs' log lines go, and how many of them.

#include <memory>
#include <string>

#include "log/event.h"

namespace CLI {
class App;
}

namespace spdlog {
class formatter;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace porthole::log {

/// Adds --log and --log-level to a program's command line (either may be
/// repeated; the last one given wins), writing into `target` and `level`,
/// whose values on entry are the defaults shown in --help; and --log-format
/// (text or json) into `*format` if given.
void add_options(CLI::App& app, std::string& target, std::string& level,
                 std::string* format = nullptr);

/// Sends log lines to "stdout", "stderr", "none" or a file path (appended),
/// at `level` (trace, debug, info, warn, error). Throws std::invalid_argument
/// for an unknown level and std::runtime_error for a file that cannot be opened.
/// `problems`, if given, also receives the warnings and errors (at `level` or above),
/// as the text of each line without time and level. `format` is "text" or "json"
/// (std::invalid_argument otherwise).
void configure(const std::string& target, const std::string& level,
               std::shared_ptr<spdlog::sinks::sink> problems = nullptr,
               const std::string& format = "text");

/// Formats lines as `format` says: time (UTC), level, then the event (see event.h).
std::unique_ptr<spdlog::formatter> make_line_formatter(format f);

}  // namespace porthole::log
