#pragma once
// portholed's YAML configuration file (--config FILE): one key for every
// command-line flag of the program, named as the flag without its dashes.
// The command line overrides the file. See docs/CONFIG.md.

#include <filesystem>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace porthole::server {

/// What --config and --print-config asked for.
struct config_options {
  std::string file;    ///< the configuration file; empty: none
  bool print = false;  ///< print the effective configuration and exit
};

/// Adds --config FILE and --print-config to `app`, writing into `out`.
void add_config_options(CLI::App& app, config_options& out);

/// Gives each key of the YAML text to the option of `app` of that name, as if
/// it were on the command line, unless the command line gave that option.
/// Call after app.parse(). The value goes through the option's own conversion
/// and validators; a relative path (an option whose type name says FILE, DIR
/// or PATH) is taken relative to the file's directory. Options of
/// subcommands, positionals, --help, --version, --config and --print-config
/// are not keys. A null value leaves the option as it is; an empty text is
/// no settings. Throws config::config_error "FILE:LINE:COLUMN: KEY: what".
void apply_config_text(CLI::App& app, std::string_view yaml_text,
                       const std::filesystem::path& name_for_errors);

/// apply_config_text() with the text of `file`; throws config::config_error
/// if it cannot be read.
void apply_config_file(CLI::App& app, const std::filesystem::path& file);

/// The configuration in effect as YAML: every key and its value (given on
/// the command line, in the file, or the default; `~` for an option that has
/// no value and no default), in the order of --help. Text apply_config_text()
/// takes back.
std::string effective_config(const CLI::App& app);

}  // namespace porthole::server
