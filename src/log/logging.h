#pragma once
// Where the programs' log lines go, and how many of them.

#include <string>

namespace porthole::log {

/// Sends log lines to "stdout", "stderr", "none" or a file path (appended),
/// at `level` (trace, debug, info, warn, error). Throws std::invalid_argument
/// for an unknown level and std::runtime_error for a file that cannot be opened.
void configure(const std::string& target, const std::string& level);

}  // namespace porthole::log
