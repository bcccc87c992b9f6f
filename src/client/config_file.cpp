#include "client/config_file.h"

#include <pwd.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "config/yaml_file.h"
#include "net/dialer.h"

namespace porthole::client {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view proto_shape =
    "a map of http, https or tcp to a local [host:]port, as in 'http: 8080'";

const std::vector<std::string_view> top_level_keys = {"server_addr",
                                                      "authtoken",
                                                      "auth_token",
                                                      "trust_ca",
                                                      "trust_host_root_certs",
                                                      "http_proxy",
                                                      "pool_size",
                                                      "local_idle_conns",
                                                      "local_idle_timeout",
                                                      "threads",
                                                      "inspect_addr",
                                                      "inspect_db",
                                                      "inspect_body_limit",
                                                      "inspect_keep",
                                                      "log",
                                                      "log_level",
                                                      "ready_file",
                                                      "tunnels"};
const std::vector<std::string_view> tunnel_keys = {"proto",       "subdomain", "hostname",
                                                   "auth",        "upstream",  "remote_port"};
const std::vector<std::string_view> upstreams = {"http1", "http2"};
const std::vector<std::string_view> protocols = {"http", "https", "tcp"};
const std::vector<std::string_view> log_levels = {"trace", "debug", "info", "warn", "error"};

fs::path home_directory() {
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return home;
  }
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return {};
}

std::string join(const std::vector<std::string_view>& words) {
  std::string out;
  for (const auto word : words) {
    if (!out.empty()) {
      out += ", ";
    }
    out += word;
  }
  return out;
}

using config::describe;

std::string suggestion(std::string_view word, const std::vector<std::string_view>& known) {
  return config::did_you_mean(word, known);
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

struct address {
  std::string host;  ///< without brackets; may be empty
  std::uint16_t port = 0;
};

// "PORT", "HOST:PORT", "[V6]:PORT" and, if `bare_is_port` is false, "HOST" or
// "[V6]" alone (port 0). Throws std::invalid_argument saying what is wrong.
address parse_address(std::string_view text, bool bare_is_port) {
  address out;
  std::string_view port;
  bool has_port = true;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      throw std::invalid_argument("missing ']' in '" + std::string(text) + "'");
    }
    out.host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty()) {
      has_port = false;
    } else if (!rest.starts_with(':')) {
      throw std::invalid_argument("expected ':port' after ']' in '" + std::string(text) + "'");
    } else {
      port = rest.substr(1);
    }
  } else if (const std::size_t colon = text.find(':'); colon == std::string_view::npos) {
    if (bare_is_port) {
      port = text;
    } else {
      out.host = text;
      has_port = false;
    }
  } else if (text.find(':', colon + 1) != std::string_view::npos) {
    throw std::invalid_argument("put an IPv6 address in brackets, as in '[::1]:8080' (got '" +
                                std::string(text) + "')");
  } else {
    out.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if ((!has_port && (bare_is_port || out.host.empty())) || (has_port && port.empty())) {
    throw std::invalid_argument("no port in '" + std::string(text) + "'");
  }
  if (has_port) {
    const auto number = parse_port(port);
    if (!number) {
      throw std::invalid_argument("bad port '" + std::string(port) + "' (want 1-65535)");
    }
    out.port = *number;
  }
  return out;
}

// The proxy URL with any password hidden, for error messages.
std::string without_password(const std::string& url) {
  const std::size_t at = url.rfind('@');
  if (at == std::string::npos) {
    return url;
  }
  const std::size_t scheme_end = url.find("://");
  const std::size_t user_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const std::size_t colon = url.find(':', user_start);
  if (colon == std::string::npos || colon > at) {
    return url;
  }
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty() || from == to) {
    return;
  }
  for (std::size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
}

// One key and its value in a YAML map.
struct entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;

  // Where to point for a problem with the value: at the value itself, or at
  // the key if the value is left out (a missing value's mark is the next token).
  YAML::Mark value_mark() const { return value.IsNull() ? key_node.Mark() : value.Mark(); }
};

// Reads one configuration text; every error it throws names the place.
class config_parser {
 public:
  explicit config_parser(const fs::path& file) : file_(file), base_(file.parent_path()) {}

  config_file parse(std::string_view text) {
    config_file out;
    out.path = file_;
    const YAML::Node root = config::load_one_document(std::string(text), file_);
    if (root.IsNull()) {
      return out;
    }
    if (!root.IsMap()) {
      fail(root.Mark(),
           "expected a map of settings (" + join(top_level_keys) + "), got " + describe(root));
    }
    read_settings(root, out);
    return out;
  }

 private:
  [[noreturn]] void fail(const YAML::Mark& at, const std::string& what) const {
    config::fail_at(file_, at, what);
  }

  // The entries of a map in file order, each key a non-empty scalar given once.
  // `prefix` starts every message ("" or "tunnel 'blog': "); `duplicate_noun`
  // names what a key is ("tunnel ", "protocol ") in "X given twice".
  std::vector<entry> entries(const YAML::Node& map, const std::string& prefix,
                             std::string_view duplicate_noun = "") const {
    std::vector<entry> out;
    std::map<std::string, int, std::less<>> first_line;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar() || key.Scalar().empty()) {
        fail(key.Mark(), prefix + "expected a name as the key, got " + describe(key));
      }
      const std::string name = key.Scalar();
      if (const auto [earlier, first] = first_line.try_emplace(name, key.Mark().line + 1); !first) {
        fail(key.Mark(), prefix + std::string(duplicate_noun) + "'" + name +
                             "' given twice (first on line " + std::to_string(earlier->second) +
                             ")");
      }
      out.push_back({name, key, it->second});
    }
    return out;
  }

  std::string string_value(const entry& e, const std::string& prefix) const {
    if (!e.value.IsScalar()) {
      fail(e.value_mark(),
           prefix + "'" + e.key + "' must be a string (got " + describe(e.value) + ")");
    }
    return e.value.Scalar();
  }

  std::string non_empty_string(const entry& e, const std::string& prefix) const {
    std::string value = string_value(e, prefix);
    if (value.empty()) {
      fail(e.value_mark(), prefix + "'" + e.key + "' must not be empty");
    }
    return value;
  }

  std::string one_of(const entry& e, const std::vector<std::string_view>& allowed) const {
    std::string value = string_value(e, "");
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
      fail(e.value_mark(),
           "'" + e.key + "' must be one of " + join(allowed) + " (got " + describe(e.value) + ")");
    }
    return value;
  }

  long long integer(const entry& e, long long min, long long max) const {
    if (!e.value.IsScalar()) {
      fail(e.value_mark(), "'" + e.key + "' must be an integer (got " + describe(e.value) + ")");
    }
    const std::string& text = e.value.Scalar();
    long long value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || end != text.data() + text.size() ||
        (ec != std::errc{} && ec != std::errc::result_out_of_range)) {
      fail(e.value_mark(), "'" + e.key + "' must be an integer (got " + describe(e.value) + ")");
    }
    if (ec == std::errc::result_out_of_range || value < min || value > max) {
      const std::string range = max == std::numeric_limits<long long>::max()
                                    ? std::to_string(min) + " or more"
                                    : std::to_string(min) + "-" + std::to_string(max);
      fail(e.value_mark(), "'" + e.key + "' must be " + range + " (got " + text + ")");
    }
    return value;
  }

  bool boolean(const entry& e) const {
    bool value = false;
    if (!e.value.IsScalar() || !YAML::convert<bool>::decode(e.value, value)) {
      fail(e.value_mark(), "'" + e.key + "' must be true or false (got " + describe(e.value) + ")");
    }
    return value;
  }

  // An address, described by `shape` in errors: to connect to (server_addr:
  // a host, and a port that defaults to 443) or to listen on (inspect_addr: a
  // port, and a host that defaults to every interface).
  std::string network_address(const entry& e, std::string_view shape, bool to_connect) const {
    std::string text = non_empty_string(e, "");
    try {
      const address a = parse_address(text, false);
      if (to_connect && a.host.empty()) {
        throw std::invalid_argument("no host in '" + text + "'");
      }
      if (!to_connect && a.port == 0) {
        throw std::invalid_argument("no port in '" + text + "'");
      }
    } catch (const std::invalid_argument& bad) {
      fail(e.value_mark(), "'" + e.key + "' must be " + std::string(shape) + ": " + bad.what());
    }
    return text;
  }

  // A path as written, with "~/" meaning $HOME and a relative path taken
  // relative to the file's own directory (not the current directory, which
  // changes with where porthole is started).
  std::string file_path(const entry& e) const {
    const std::string text = non_empty_string(e, "");
    fs::path p;
    if (text == "~" || text.starts_with("~/")) {
      p = home_directory() / text.substr(std::min<std::size_t>(2, text.size()));
    } else {
      p = text;
    }
    if (p.is_relative() && !base_.empty()) {
      p = base_ / p;
    }
    return p.lexically_normal().string();
  }

  void read_settings(const YAML::Node& root, config_file& out) const {
    std::optional<std::string> token_key;
    for (const entry& e : entries(root, "")) {
      if (e.key == "server_addr") {
        out.server_addr = network_address(e, "host[:port]", true);
      } else if (e.key == "authtoken" || e.key == "auth_token") {
        if (token_key) {
          fail(e.key_node.Mark(), "'" + e.key + "' given, but '" + *token_key +
                                      "' was already (they are the same setting; keep one)");
        }
        token_key = e.key;
        out.authtoken = string_value(e, "");
      } else if (e.key == "trust_ca") {
        out.trust_ca = file_path(e);
      } else if (e.key == "trust_host_root_certs") {
        out.trust_host_root_certs = boolean(e);
      } else if (e.key == "http_proxy") {
        const std::string url = non_empty_string(e, "");
        try {
          net::http_proxy::parse(url);
        } catch (const std::invalid_argument& bad) {
          std::string why = bad.what();
          replace_all(why, url, without_password(url));
          fail(e.value_mark(),
               "'http_proxy' must be a proxy URL such as http://proxy:3128: " + why);
        }
        out.http_proxy = url;
      } else if (e.key == "pool_size") {
        out.pool_size = static_cast<int>(integer(e, 1, 1000));
      } else if (e.key == "local_idle_conns") {
        out.local_idle_conns = static_cast<std::size_t>(integer(e, 0, 10000));
      } else if (e.key == "threads") {
        out.threads = static_cast<std::size_t>(integer(e, 1, 256));
      } else if (e.key == "local_idle_timeout") {
        out.local_idle_timeout = static_cast<int>(integer(e, 1, 3600));
      } else if (e.key == "inspect_addr") {
        if (e.value.IsScalar() && e.value.Scalar() == "disabled") {
          out.inspect_addr = "disabled";
        } else {
          out.inspect_addr = network_address(e, "host:port or 'disabled'", false);
        }
      } else if (e.key == "inspect_db") {
        // ":memory:" is SQLite's name for a database that keeps nothing on disk.
        out.inspect_db =
            e.value.IsScalar() && e.value.Scalar() == ":memory:" ? ":memory:" : file_path(e);
      } else if (e.key == "inspect_body_limit") {
        out.inspect_body_limit =
            static_cast<std::size_t>(integer(e, 0, std::numeric_limits<long long>::max()));
      } else if (e.key == "inspect_keep") {
        out.inspect_keep =
            static_cast<std::size_t>(integer(e, 0, std::numeric_limits<long long>::max()));
      } else if (e.key == "log") {
        const std::string target = non_empty_string(e, "");
        out.log =
            target == "stdout" || target == "stderr" || target == "none" ? target : file_path(e);
      } else if (e.key == "log_level") {
        out.log_level = one_of(e, log_levels);
      } else if (e.key == "ready_file") {
        out.ready_file = file_path(e);
      } else if (e.key == "tunnels") {
        read_tunnels(e, out);
      } else {
        fail(e.key_node.Mark(), "unknown key '" + e.key + "' (expected one of: " +
                                    join(top_level_keys) + suggestion(e.key, top_level_keys) + ")");
      }
    }
  }

  void read_tunnels(const entry& tunnels, config_file& out) const {
    if (tunnels.value.IsNull()) {
      return;
    }
    if (!tunnels.value.IsMap()) {
      fail(tunnels.value_mark(), "'tunnels' must be a map of tunnel names to tunnels (got " +
                                     describe(tunnels.value) + ")");
    }
    for (const entry& e : entries(tunnels.value, "", "tunnel ")) {
      out.tunnels.push_back(read_tunnel(e));
    }
  }

  named_tunnel read_tunnel(const entry& t) const {
    const std::string prefix = "tunnel '" + t.key + "': ";
    if (t.value.IsNull()) {
      fail(t.key_node.Mark(), prefix + "no 'proto' (" + std::string(proto_shape) + ")");
    }
    if (!t.value.IsMap()) {
      fail(t.value_mark(),
           prefix + "expected a map of " + join(tunnel_keys) + " (got " + describe(t.value) + ")");
    }

    tunnel_spec common;
    common.name = t.key;
    std::vector<std::pair<std::string, address>> locals;
    std::optional<entry> remote_port;
    std::optional<entry> http_only;  // the first of subdomain, hostname, auth
    for (const entry& e : entries(t.value, prefix)) {
      if (e.key == "proto") {
        locals = read_proto(e, prefix);
      } else if (e.key == "subdomain") {
        common.subdomain = non_empty_string(e, prefix);
      } else if (e.key == "hostname") {
        common.hostname = non_empty_string(e, prefix);
      } else if (e.key == "auth") {
        common.http_auth = string_value(e, prefix);
        if (common.http_auth.find(':') == std::string::npos) {
          // The value itself is a secret: not repeated here.
          fail(e.value_mark(), prefix + "'auth' must be \"user:password\", with a ':'");
        }
      } else if (e.key == "upstream") {
        common.upstream = string_value(e, prefix);
        if (std::find(upstreams.begin(), upstreams.end(), common.upstream) == upstreams.end()) {
          fail(e.value_mark(), prefix + "bad upstream '" + common.upstream + "' (expected one of: " +
                                   join(upstreams) + ")");
        }
      } else if (e.key == "remote_port") {
        if (!e.value.IsScalar()) {
          fail(e.value_mark(),
               prefix + "'remote_port' must be an integer (got " + describe(e.value) + ")");
        }
        const auto port = parse_port(e.value.Scalar());
        if (!port) {
          fail(e.value_mark(),
               prefix + "bad port '" + e.value.Scalar() + "' for remote_port (want 1-65535)");
        }
        common.remote_port = *port;
        remote_port = e;
      } else {
        fail(e.key_node.Mark(), "unknown key '" + e.key + "' in tunnel '" + t.key +
                                    "' (expected one of: " + join(tunnel_keys) +
                                    suggestion(e.key, tunnel_keys) + ")");
      }
      if ((e.key == "subdomain" || e.key == "hostname" || e.key == "auth" ||
           e.key == "upstream") &&
          !http_only) {
        http_only = e;
      }
    }
    if (locals.empty()) {
      fail(t.key_node.Mark(), prefix + "no 'proto' (" + std::string(proto_shape) + ")");
    }

    const bool has_tcp = std::any_of(locals.begin(), locals.end(),
                                     [](const auto& local) { return local.first == "tcp"; });
    const bool has_http = std::any_of(locals.begin(), locals.end(),
                                      [](const auto& local) { return local.first != "tcp"; });
    if (remote_port && !has_tcp) {
      fail(remote_port->key_node.Mark(),
           prefix + "'remote_port' is only for tcp, and 'proto' has no tcp");
    }
    if (http_only && !has_http) {
      fail(http_only->key_node.Mark(),
           prefix + "'" + http_only->key + "' is only for http and https, and 'proto' has neither");
    }
    // ngrok 1.x: a tunnel is named after its subdomain, or its hostname if the
    // name looks like one.
    if (common.subdomain.empty() && common.hostname.empty()) {
      if (t.key.find('.') == std::string::npos) {
        common.subdomain = t.key;
      } else {
        common.hostname = t.key;
      }
    }

    named_tunnel out{t.key, {}};
    for (const auto& [protocol, local] : locals) {
      tunnel_spec spec;
      spec.name = t.key;
      spec.protocol = protocol;
      spec.local_host = local.host.empty() ? "localhost" : local.host;
      spec.local_port = std::to_string(local.port);
      if (protocol == "tcp") {
        spec.remote_port = common.remote_port;
      } else {
        spec.subdomain = common.subdomain;
        spec.hostname = common.hostname;
        spec.http_auth = common.http_auth;
        spec.upstream = common.upstream;
      }
      out.specs.push_back(std::move(spec));
    }
    return out;
  }

  std::vector<std::pair<std::string, address>> read_proto(const entry& proto,
                                                          const std::string& prefix) const {
    if (!proto.value.IsMap() || proto.value.size() == 0) {
      fail(proto.value_mark(), prefix + "'proto' must be " + std::string(proto_shape) + " (got " +
                                   describe(proto.value) + ")");
    }
    std::vector<std::pair<std::string, address>> out;
    for (const entry& e : entries(proto.value, prefix, "protocol ")) {
      if (std::find(protocols.begin(), protocols.end(), e.key) == protocols.end()) {
        fail(e.key_node.Mark(), prefix + "unknown protocol '" + e.key +
                                    "' in 'proto' (expected one of: " + join(protocols) +
                                    suggestion(e.key, protocols) + ")");
      }
      if (!e.value.IsScalar() || e.value.Scalar().empty()) {
        // An unquoted [::1]:8080 reads as a YAML list.
        const std::string hint =
            e.value.IsSequence() ? "; quote an IPv6 address, as in \"[::1]:8080\"" : "";
        fail(e.value_mark(), prefix + "'" + e.key +
                                 "' must be a local [host:]port, as in 8080 or " +
                                 "localhost:8080 (got " + describe(e.value) + hint + ")");
      }
      try {
        out.emplace_back(e.key, parse_address(e.value.Scalar(), true));
      } catch (const std::invalid_argument& bad) {
        fail(e.value_mark(), prefix + e.key + ": " + bad.what());
      }
    }
    return out;
  }

  fs::path file_;
  fs::path base_;
};

}  // namespace

const named_tunnel* config_file::find(std::string_view name) const {
  const auto it = std::find_if(tunnels.begin(), tunnels.end(),
                               [&](const named_tunnel& t) { return t.name == name; });
  return it == tunnels.end() ? nullptr : &*it;
}

config_file parse_config(std::string_view yaml_text, const fs::path& name_for_errors) {
  return config_parser(name_for_errors).parse(yaml_text);
}

config_file load_config_file(const fs::path& path) {
  return parse_config(config::read_text(path), path);
}

fs::path default_config_path() {
  return home_directory() / ".porthole.yml";
}

std::vector<tunnel_spec> select_tunnels(const config_file& file,
                                        const std::vector<std::string>& names) {
  std::vector<tunnel_spec> out;
  std::set<std::string_view> asked;
  for (const auto& name : names) {
    if (!asked.insert(name).second) {
      throw config_error(file.path.string() + ": tunnel '" + name + "' asked for twice");
    }
    const named_tunnel* tunnel = file.find(name);
    if (tunnel == nullptr) {
      std::vector<std::string_view> defined;
      for (const auto& t : file.tunnels) {
        defined.push_back(t.name);
      }
      throw config_error(file.path.string() + ": no tunnel named '" + name + "' (" +
                         (defined.empty()
                              ? "the file defines none"
                              : "defined: " + join(defined) + suggestion(name, defined)) +
                         ")");
    }
    out.insert(out.end(), tunnel->specs.begin(), tunnel->specs.end());
  }
  return out;
}

std::vector<tunnel_spec> all_tunnels(const config_file& file) {
  std::vector<tunnel_spec> out;
  for (const auto& t : file.tunnels) {
    out.insert(out.end(), t.specs.begin(), t.specs.end());
  }
  return out;
}

}  // namespace porthole::client
