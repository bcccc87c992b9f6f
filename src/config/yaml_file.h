#pragma once
// What the programs' YAML configuration files share: reading one safely,
// errors that point at FILE:LINE:COLUMN, and "did you mean" for a typo.

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::config {

/// A configuration file that cannot be read or is not valid. what() is one
/// line for the user: "FILE:LINE:COLUMN: what is wrong and what was expected"
/// (just "FILE: ..." when the problem is not at one place in the file).
struct config_error : std::runtime_error {
  /// Control characters in `what` (a key or value quoted from the file) are
  /// written as escapes ("\n", "\x1b"), so the message stays one line and
  /// cannot drive the terminal it is printed on.
  explicit config_error(std::string_view what);
};

/// "FILE:LINE:COLUMN" (1-based), or just "FILE" for a null mark.
std::string place(const std::filesystem::path& file, const YAML::Mark& at);

/// Throws config_error "FILE:LINE:COLUMN: what".
[[noreturn]] void fail_at(const std::filesystem::path& file, const YAML::Mark& at,
                          const std::string& what);

/// The whole text of a configuration file (at most 1 MiB). Throws
/// config_error naming the file if it is a directory, too big, or unreadable.
std::string read_text(const std::filesystem::path& file);

/// Parses `yaml` as one YAML document (a null node for an empty text or one
/// of only comments). Throws config_error at the place of a syntax error or
/// of a second document. Never loops: unlike yaml-cpp 0.7's LoadAll().
YAML::Node load_one_document(const std::string& yaml, const std::filesystem::path& file);

/// "; did you mean 'x'?" for the one of `known` closest to `word`, if it is
/// close enough to be a typo of it; otherwise "".
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& known);

/// What a node is, for "must be X (got Y)": "a list", "a map", "an empty
/// map", "nothing" or the scalar quoted (cut after 40 bytes).
std::string describe(const YAML::Node& node);

}  // namespace porthole::config
