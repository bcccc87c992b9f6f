#include "token_command.h"

#include <unistd.h>

#include <ctime>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "server/token_store.h"

namespace porthole::portholed {
namespace {

using server::token_record;

constexpr std::size_t max_limit = 10000000;

std::string utc(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return out.str();
}

std::string limit_text(const std::optional<std::size_t>& v) {
  if (!v) {
    return "default";
  }
  return *v == 0 ? "none" : std::to_string(*v);
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    out += (out.empty() ? "" : ",") + s;
  }
  return out.empty() ? "-" : out;
}

std::string label(const token_record& r) {
  return "token " + std::to_string(r.id) + (r.name.empty() ? "" : " '" + r.name + "'");
}

nlohmann::json to_json(const token_record& r) {
  auto opt = [](const std::optional<std::size_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {{"id", r.id},
          {"name", r.name},
          {"prefix", r.prefix},
          {"subdomains", r.subdomains},
          {"max_tunnels", opt(r.max_tunnels)},
          {"max_tcp_ports", opt(r.max_tcp_ports)},
          {"max_conns", opt(r.max_conns)},
          {"created", utc(r.created)},
          {"last_used", r.last_used ? nlohmann::json(utc(*r.last_used)) : nlohmann::json(nullptr)}};
}

void print_table(const std::vector<token_record>& all) {
  std::vector<std::vector<std::string>> rows{{"ID", "NAME", "PREFIX", "SUBDOMAINS", "MAX-TUNNELS",
                                              "MAX-TCP-PORTS", "MAX-CONNS", "CREATED",
                                              "LAST-USED"}};
  for (const token_record& r : all) {
    rows.push_back({std::to_string(r.id), r.name.empty() ? "-" : r.name, r.prefix + "...",
                    joined(r.subdomains), limit_text(r.max_tunnels), limit_text(r.max_tcp_ports),
                    limit_text(r.max_conns), utc(r.created),
                    r.last_used ? utc(*r.last_used) : "never"});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(width[i] - row[i].size() + 2, ' ');
      }
    }
    std::cout << line << "\n";
  }
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string default_state_dir() {
  if (const char* dirs = std::getenv("STATE_DIRECTORY"); dirs != nullptr && *dirs != '\0') {
    const std::string all(dirs);
    return all.substr(0, all.find(':'));  // systemd joins several with ':'
  }
  if (geteuid() == 0) {
    return "/var/lib/porthole";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && *home != '\0' ? home : ".") + "/.porthole";
}

struct token_cli::options {
  explicit options(std::string& dir) : state_dir(dir) {}

  std::string& state_dir;
  CLI::App* token = nullptr;
  CLI::App* add = nullptr;
  CLI::App* list = nullptr;
  CLI::App* revoke = nullptr;
  server::token_request req;
  std::size_t max_tunnels = 0, max_tcp_ports = 0, max_conns = 0;
  CLI::Option* max_tunnels_opt = nullptr;
  CLI::Option* max_tcp_ports_opt = nullptr;
  CLI::Option* max_conns_opt = nullptr;
  bool json = false;
  std::string which;

  std::filesystem::path db() const { return std::filesystem::path(state_dir) / "tokens.db"; }
};

token_cli::token_cli(CLI::App& app, server::server_config& cfg, std::string& state_dir)
    : opt_(std::make_unique<options>(state_dir)) {
  app.add_option("--max-tunnels-per-token", cfg.max_tunnels_per_token,
                 "Tunnels all the clients of one authtoken may have open together (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, max_limit));
  app.add_option("--max-tcp-ports-per-token", cfg.max_tcp_ports_per_token,
                 "TCP tunnels (public ports) all the clients of one authtoken may have open "
                 "together (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, max_limit));
  app.add_option("--max-conns-per-token", cfg.max_conns_per_token,
                 "Public connections all the clients of one authtoken may have open at once "
                 "(HTTP gets 503 beyond, TCP is closed); 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, max_limit));

  options& o = *opt_;
  o.token = app.add_subcommand("token", "Manage the authtokens of <state-dir>/tokens.db");
  o.token->require_subcommand(1);
  auto state_option = [&](CLI::App* sub) {
    sub->add_option("--state-dir", o.state_dir, "Directory of tokens.db")->capture_default_str();
  };

  o.add =
      o.token->add_subcommand("add", "Create a token and print it (it is shown only this once)");
  state_option(o.add);
  o.add->add_option("--name", o.req.name, "A name to list and revoke it by");
  o.add
      ->add_option("--subdomains", o.req.subdomains,
                   "Subdomains only this token's clients may have, comma-separated")
      ->delimiter(',');
  o.max_tunnels_opt =
      o.add
          ->add_option("--max-tunnels", o.max_tunnels,
                       "Tunnels this token's clients may have open together (default: "
                       "--max-tunnels-per-token of the server; 0: no limit)")
          ->check(CLI::Range(std::size_t{0}, max_limit));
  o.max_tcp_ports_opt =
      o.add
          ->add_option("--max-tcp-ports", o.max_tcp_ports,
                       "TCP tunnels this token's clients may have open together (default: "
                       "--max-tcp-ports-per-token; 0: no limit)")
          ->check(CLI::Range(std::size_t{0}, max_limit));
  o.max_conns_opt =
      o.add
          ->add_option("--max-conns", o.max_conns,
                       "Public connections this token's clients may have open at once "
                       "(default: --max-conns-per-token; 0: no limit)")
          ->check(CLI::Range(std::size_t{0}, max_limit));

  o.list = o.token->add_subcommand("list", "List the tokens (never the tokens themselves)");
  state_option(o.list);
  o.list->add_flag("--json", o.json, "A JSON array instead of a table");

  o.revoke = o.token->add_subcommand(
      "revoke", "Revoke a token: new Auths are refused, its clients are disconnected");
  state_option(o.revoke);
  o.revoke->add_option("token", o.which, "ID or NAME of the token (see token list)")->required();
}

token_cli::~token_cli() = default;

bool token_cli::chosen() const {
  return opt_->token->parsed();
}

bool token_cli::state_dir_given() const {
  for (const CLI::App* sub : {opt_->add, opt_->list, opt_->revoke}) {
    if (sub->parsed() && sub->count("--state-dir") > 0) {
      return true;
    }
  }
  return false;
}

int token_cli::run() {
  options& o = *opt_;
  try {
    if (o.add->parsed()) {
      if (*o.max_tunnels_opt) {
        o.req.max_tunnels = o.max_tunnels;
      }
      if (*o.max_tcp_ports_opt) {
        o.req.max_tcp_ports = o.max_tcp_ports;
      }
      if (*o.max_conns_opt) {
        o.req.max_conns = o.max_conns;
      }
      server::token_store store(o.db(), true);
      auto [token, rec] = store.add(o.req);
      std::cout << token << std::endl;
      std::cerr << "Added " << label(rec) << " to " << o.db().string()
                << ". The token is shown only this once (only its hash is stored).\n"
                << "A client uses it with:  porthole --authtoken " << token
                << " ...   (or authtoken: in ~/.porthole.yml)\n";
      return 0;
    }
    if (o.list->parsed()) {
      std::vector<token_record> all;
      if (std::filesystem::exists(o.db())) {
        all = server::token_store(o.db(), false).list();
      }
      if (o.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& r : all) {
          out.push_back(to_json(r));
        }
        std::cout << out.dump(2) << "\n";
      } else if (all.empty()) {
        std::cerr << "No tokens in " << o.db().string() << " (add one with: portholed token add)\n";
      } else {
        print_table(all);
      }
      return 0;
    }
    // revoke
    server::token_store store(o.db(), false);
    std::vector<token_record> all = store.list();
    std::vector<token_record> matches;
    for (const auto& r : all) {
      if (all_digits(o.which) ? std::to_string(r.id) == o.which : r.name == o.which) {
        matches.push_back(r);
      }
    }
    if (matches.empty()) {
      std::cerr << "portholed: no token has the " << (all_digits(o.which) ? "id" : "name") << " '"
                << o.which << "' in " << o.db().string() << " (see portholed token list)\n";
      return 1;
    }
    if (matches.size() > 1) {
      std::string ids;
      for (const auto& r : matches) {
        ids += (ids.empty() ? "" : ", ") + std::to_string(r.id);
      }
      std::cerr << "portholed: the name '" << o.which << "' is ambiguous: tokens " << ids
                << " have it; revoke one by its id\n";
      return 1;
    }
    store.revoke(matches[0].id);
    std::cout << "Revoked " << label(matches[0])
              << ". A running portholed refuses it from now on and disconnects its clients "
                 "within a few seconds.\n";
    if (all.size() == 1) {
      std::cerr << "That was the last token: portholed now refuses every client until a token "
                   "is added (or "
                << o.db().string() << " is removed).\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "portholed: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace porthole::portholed
