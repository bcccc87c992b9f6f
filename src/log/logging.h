#pragma once
// Where the programs' log lines go, and how many of them.

#include <memory>
#include <string>

namespace CLI {
class App;
}

namespace spdlog::sinks {
class sink;
}

namespace porthole::log {

/// Adds --log and --log-level to a program's command line (either may be
/// repeated; the last one given wins), writing into `target` and `level`,
/// whose values on entry are the defaults shown in --help.
void add_options(CLI::App& app, std::string& target, std::string& level);

/// Sends log lines to "stdout", "stderr", "none" or a file path (appended),
/// at `level` (trace, debug, info, warn, error). Throws std::invalid_argument
/// for an unknown level and std::runtime_error for a file that cannot be opened.
/// `problems`, if given, also receives the warnings and errors (at `level` or above).
void configure(const std::string& target, const std::string& level,
               std::shared_ptr<spdlog::sinks::sink> problems = nullptr);

}  // namespace porthole::log
