#include "server/config_file.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

#include "config/yaml_file.h"

namespace porthole::server {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view config_flag = "--config";
constexpr std::string_view print_flag = "--print-config";

// The options of `app` that are keys, each under its first long name.
template <typename App>
auto keyed_options(App& app) {
  std::vector<std::pair<std::string, std::remove_reference_t<decltype(app.get_options().front())>>>
      out;
  for (auto* opt : app.get_options()) {
    if (opt->get_lnames().empty() || opt == app.get_help_ptr() || opt == app.get_help_all_ptr() ||
        opt == app.get_version_ptr() || opt == app.get_config_ptr() ||
        opt->check_name(std::string(config_flag)) || opt->check_name(std::string(print_flag))) {
      continue;
    }
    out.emplace_back(opt->get_lnames().front(), opt);
  }
  return out;
}

bool is_flag(const CLI::Option& opt) {
  return opt.get_expected_max() == 0;
}

bool is_list(const CLI::Option& opt) {
  return opt.get_items_expected_max() > 1;
}

// The words of a type name such as "TEXT:FILE" or "stdout|stderr|none|FILE".
std::vector<std::string> type_words(const CLI::Option& opt) {
  std::vector<std::string> out;
  std::string word;
  for (const char c : opt.get_type_name() + ":") {
    if (c == ':' || c == '|' || c == ' ') {
      if (!word.empty()) {
        out.push_back(word);
      }
      word.clear();
    } else {
      word += c;
    }
  }
  return out;
}

// A relative path is relative to the file's directory (not the directory
// portholed happens to be started in); a value that the type name lists as a
// word of its own (the "stderr" of "stdout|stderr|none|FILE") is no path.
std::string resolve_path(const CLI::Option& opt, const std::string& value, const fs::path& base) {
  const auto words = type_words(opt);
  const bool takes_path = std::any_of(words.begin(), words.end(), [](const std::string& w) {
    return w == "FILE" || w == "DIR" || w == "PATH";
  });
  if (!takes_path || value.empty() || std::find(words.begin(), words.end(), value) != words.end()) {
    return value;
  }
  const fs::path p(value);
  return p.is_relative() ? (base / p).lexically_normal().string() : value;
}

class config_reader {
 public:
  config_reader(CLI::App& app, const fs::path& file)
      : app_(app), file_(file), base_(fs::absolute(file).parent_path()) {}

  void apply(std::string_view text) {
    const YAML::Node root = config::load_one_document(std::string(text), file_);
    if (root.IsNull()) {
      return;
    }
    if (!root.IsMap()) {
      fail(root.Mark(), "expected a map of settings, as in 'domain: tunnel.example.com' (got " +
                            config::describe(root) + ")");
    }
    const auto options = keyed_options(app_);
    std::vector<std::string_view> keys;
    for (const auto& [key, opt] : options) {
      keys.push_back(key);
    }
    std::map<std::string, int, std::less<>> first_line;
    for (auto it = root.begin(); it != root.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar() || key.Scalar().empty()) {
        fail(key.Mark(),
             "expected a setting's name as the key (got " + config::describe(key) + ")");
      }
      const std::string name = key.Scalar();
      if (const auto [earlier, first] = first_line.try_emplace(name, key.Mark().line + 1); !first) {
        fail(key.Mark(),
             "'" + name + "' given twice (first on line " + std::to_string(earlier->second) + ")");
      }
      const auto known = std::find_if(options.begin(), options.end(),
                                      [&](const auto& o) { return o.first == name; });
      if (known == options.end()) {
        fail(key.Mark(), "unknown key '" + name + "'" + config::did_you_mean(name, keys) +
                             " (keys are the long flags of portholed --help, without '--')");
      }
      CLI::Option& opt = *known->second;
      if (it->second.IsNull()) {
        continue;  // a key without a value changes nothing
      }
      const bool on_command_line = opt.count() > 0;
      const auto values = values_of(name, opt, it->second);
      if (on_command_line) {
        continue;  // the command line wins (the value's shape is checked all the same)
      }
      for (const auto& [text, at] : values) {
        give(name, opt, text, at);
      }
    }
  }

 private:
  [[noreturn]] void fail(const YAML::Mark& at, const std::string& what) const {
    config::fail_at(file_, at, what);
  }

  // The value(s) of a key as the option takes them, each with its place.
  std::vector<std::pair<std::string, YAML::Mark>> values_of(const std::string& name,
                                                            const CLI::Option& opt,
                                                            const YAML::Node& value) const {
    if (value.IsMap()) {
      fail(value.Mark(), name + ": expected " + (is_list(opt) ? "a value or a list" : "a value") +
                             " (got " + config::describe(value) + ")");
    }
    if (is_flag(opt)) {
      bool on = false;
      if (!value.IsScalar() || !YAML::convert<bool>::decode(value, on)) {
        fail(value.Mark(), name + ": expected true or false (got " + config::describe(value) + ")");
      }
      return {{on ? "true" : "false", value.Mark()}};
    }
    if (!value.IsSequence()) {
      return {{value.Scalar(), value.Mark()}};
    }
    if (!is_list(opt)) {
      fail(value.Mark(),
           name + ": expected one value, not a list (only repeatable flags take lists)");
    }
    std::vector<std::pair<std::string, YAML::Mark>> out;
    for (const YAML::Node& item : value) {
      if (!item.IsScalar()) {
        fail(item.Mark(),
             name + ": expected a value in the list (got " + config::describe(item) + ")");
      }
      out.emplace_back(item.Scalar(), item.Mark());
    }
    return out;
  }

  // One value, as if given on the command line: the option's validators and
  // conversion run now, so an error points here.
  void give(const std::string& name, CLI::Option& opt, const std::string& value,
            const YAML::Mark& at) const {
    opt.add_result(resolve_path(opt, value, base_));
    try {
      opt.run_callback();
    } catch (const std::exception& e) {
      // CLI11 says "--max-pool-size: Value 5000 not in range 1 to 1000".
      std::string why = e.what();
      const std::string flag = "--" + name + ": ";
      if (why.starts_with(flag)) {
        why.erase(0, flag.size());
      }
      fail(at, name + ": " + why);
    }
  }

  CLI::App& app_;
  fs::path file_;
  fs::path base_;
};

}  // namespace

void add_config_options(CLI::App& app, config_options& out) {
  app.add_option(std::string(config_flag), out.file,
                 "YAML configuration file: every flag here is a key (domain: tunnel.example.com); "
                 "flags on the command line win; relative paths in it are relative to its "
                 "directory")
      ->type_name("FILE");
  app.add_flag(std::string(print_flag), out.print,
               "Print the configuration in effect (file, flags and defaults) as YAML and exit");
}

void apply_config_text(CLI::App& app, std::string_view yaml_text, const fs::path& name_for_errors) {
  config_reader(app, name_for_errors).apply(yaml_text);
}

void apply_config_file(CLI::App& app, const fs::path& file) {
  apply_config_text(app, config::read_text(file), file);
}

std::string effective_config(const CLI::App& app) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& [key, opt] : keyed_options(app)) {
    out << YAML::Key << key << YAML::Value;
    const auto& given = opt->results();
    if (is_flag(*opt)) {
      bool on = false;
      const std::string& text = given.empty() ? opt->get_default_str() : given.back();
      out << (CLI::detail::lexical_cast(text, on) && on);
    } else if (is_list(*opt)) {
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& value : given) {
        out << value;
      }
      out << YAML::EndSeq;
    } else if (!given.empty()) {
      out << given.back();
    } else if (!opt->get_default_str().empty()) {
      out << opt->get_default_str();
    } else {
      out << YAML::Null;
    }
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace porthole::server
