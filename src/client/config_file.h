#pragma once
// The client's YAML configuration file (~/.porthole.yml): settings and named
// tunnels. Reads ngrok 1.x configuration files unchanged. See docs/CONFIG.md.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "client/config.h"
#include "config/yaml_file.h"

namespace porthole::client {

/// A configuration file that cannot be read or is not valid: "FILE:LINE:COLUMN: ...".
using config_error = config::config_error;

/// One entry under `tunnels:`, with one spec per protocol in its `proto` map
/// (in the order written there), all named after the entry.
struct named_tunnel {
  std::string name;
  std::vector<tunnel_spec> specs;
};

/// What a configuration file says. A setting the file leaves out is empty, so
/// that the caller can tell it from a value given (and command-line flags can
/// override both). Relative paths (trust_ca, inspect_db, a log file) and a
/// leading "~/" are already resolved against the file's directory and $HOME.
struct config_file {
  std::filesystem::path path;                     ///< the file read (as named in error messages)
  std::optional<std::string> server_addr;         ///< "host[:port]" of the server's tunnel listener
  std::optional<std::string> authtoken;           ///< `authtoken`, or ngrok 1.x's `auth_token`
  std::optional<std::string> trust_ca;            ///< path of a CA file to trust for the server
  std::optional<std::string> http_proxy;          ///< a proxy URL net::http_proxy::parse accepts
  std::optional<std::string> inspect_addr;        ///< "host:port", or "disabled"
  std::optional<std::string> log;                 ///< "stdout", "stderr", "none" or a file path
  std::optional<std::string> log_level;           ///< trace, debug, info, warn or error
  std::optional<std::string> inspect_db;          ///< the inspector's database file, or ":memory:"
  std::optional<std::string> ready_file;          ///< where to write the client's ready file
  std::optional<int> pool_size;                   ///< 1-1000
  std::optional<std::size_t> local_idle_conns;    ///< 0-10000
  std::optional<int> local_idle_timeout;          ///< seconds, 1-3600
  std::optional<std::size_t> threads;             ///< 1-256
  std::optional<std::size_t> inspect_body_limit;  ///< bytes of each body to capture
  std::optional<std::size_t> inspect_keep;        ///< exchanges to keep
  bool trust_host_root_certs = false;  ///< ngrok 1.x; accepted, the system's roots are the default
  std::vector<named_tunnel> tunnels;   ///< in file order; names are unique

  /// The tunnel of that name, or nullptr.
  const named_tunnel* find(std::string_view name) const;
};

/// Reads and validates a configuration file. An empty file (or one with only
/// comments) is a valid configuration with no tunnels. Throws config_error if
/// the file cannot be read or is not valid.
config_file load_config_file(const std::filesystem::path& path);

/// Validates configuration text; `name_for_errors` is the file name put in
/// error messages and the directory relative paths are resolved against.
/// Throws config_error.
config_file parse_config(std::string_view yaml_text, const std::filesystem::path& name_for_errors);

/// $HOME/.porthole.yml (the user database's home directory if HOME is unset).
std::filesystem::path default_config_path();

/// The specs of the named tunnels, in the order asked. Throws config_error,
/// naming the file and the name, if a name is not defined in the file (listing
/// the defined ones) or is asked for twice.
std::vector<tunnel_spec> select_tunnels(const config_file& file,
                                        const std::vector<std::string>& names);

/// The specs of every tunnel in the file, in file order (`start --all`).
std::vector<tunnel_spec> all_tunnels(const config_file& file);

}  // namespace porthole::client
