#include "token_command.h"

#include <unistd.h>

#include <ctime>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster/etcd_token_store.h"
#include "cluster/make_directory.h"
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

// Where the commands keep the tokens: tokens.db, or a cluster's etcd.
class token_place {
 public:
  virtual ~token_place() = default;
  virtual std::pair<std::string, token_record> add(const server::token_request& req) = 0;
  virtual std::vector<token_record> list() = 0;
  virtual bool revoke(std::int64_t id) = 0;
  virtual std::string where() const = 0;
  /// What a revoke does to the servers that read the tokens.
  virtual std::string revoke_effect() const = 0;
  /// How the servers take any client again once every token is revoked.
  virtual std::string how_to_open() const = 0;
};

class tokens_db_place final : public token_place {
 public:
  explicit tokens_db_place(std::filesystem::path db) : db_(std::move(db)) {}

  std::pair<std::string, token_record> add(const server::token_request& req) override {
    return server::token_store(db_, true).add(req);
  }
  std::vector<token_record> list() override {
    if (!std::filesystem::exists(db_)) {
      return {};
    }
    return server::token_store(db_, false).list();
  }
  bool revoke(std::int64_t id) override { return server::token_store(db_, false).revoke(id); }
  std::string where() const override { return db_.string(); }
  std::string revoke_effect() const override {
    return "A running portholed refuses it from now on and disconnects its clients within a few "
           "seconds.";
  }
  std::string how_to_open() const override { return db_.string() + " is removed"; }

 private:
  std::filesystem::path db_;
};

class cluster_place final : public token_place {
 public:
  explicit cluster_place(const server::cluster_config& c) : store_(c), prefix_(c.prefix) {}

  std::pair<std::string, token_record> add(const server::token_request& req) override {
    return store_.add(req);
  }
  std::vector<token_record> list() override { return store_.list(); }
  bool revoke(std::int64_t id) override { return store_.revoke(id); }
  std::string where() const override { return store_.where(); }
  std::string revoke_effect() const override {
    return "Every node of the cluster refuses it from now on and disconnects its clients within "
           "a second.";
  }
  std::string how_to_open() const override {
    return "the keys under " + prefix_ + (prefix_.ends_with('/') ? "" : "/") +
           "tokens/ are deleted from etcd";
  }

 private:
  cluster::etcd_token_store store_;
  std::string prefix_;
};

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
  options(server::server_config& c, std::string& dir) : cfg(c), state_dir(dir) {}

  server::server_config& cfg;  ///< the server's, with its --cluster flags (or --config's keys)
  std::string& state_dir;      ///< the server's --state-dir (or --config's key)
  std::string own_state_dir;   ///< a subcommand's --state-dir, which wins
  server::cluster_config own_cluster;  ///< a subcommand's cluster flags, which win
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

  const CLI::App* chosen() const {
    for (const CLI::App* sub : {add, list, revoke}) {
      if (sub->parsed()) {
        return sub;
      }
    }
    return nullptr;
  }

  bool given(const char* flag) const { return chosen()->count(flag) > 0; }

  std::filesystem::path db() const {
    return std::filesystem::path(given("--state-dir") ? own_state_dir : state_dir) / "tokens.db";
  }

  // The server's cluster settings, but for those the subcommand was given.
  server::cluster_config cluster() const {
    server::cluster_config c = cfg.cluster;
    if (given("--cluster")) {
      c.etcd = own_cluster.etcd;
    }
    if (given("--cluster-prefix")) {
      c.prefix = own_cluster.prefix;
    }
    if (given("--cluster-ca")) {
      c.ca = own_cluster.ca;
    }
    if (given("--node-cert")) {
      c.cert = own_cluster.cert;
    }
    if (given("--node-key")) {
      c.key = own_cluster.key;
    }
    return c;
  }

  std::unique_ptr<token_place> place() const {
    const server::cluster_config c = cluster();
    if (!c.enabled()) {
      return std::make_unique<tokens_db_place>(db());
    }
    if (!c.prefix.starts_with('/')) {
      throw std::runtime_error("--cluster-prefix '" + c.prefix + "' must start with '/'");
    }
    return std::make_unique<cluster_place>(c);
  }
};

token_cli::token_cli(CLI::App& app, server::server_config& cfg, std::string& state_dir)
    : opt_(std::make_unique<options>(cfg, state_dir)) {
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
  o.token = app.add_subcommand(
      "token",
      "Manage the authtokens of <state-dir>/tokens.db, or with --cluster etcd://HOST:PORT those "
      "of a cluster, in its etcd (every node accepts them; a revoke reaches every node within a "
      "second)");
  o.token->require_subcommand(1);
  o.token->footer(
      "Each subcommand takes --state-dir DIR, or --cluster etcd://HOST:PORT[,...] (etcds:// for "
      "TLS, with --cluster-ca, --node-cert, --node-key) and --cluster-prefix; `portholed --config "
      "FILE token ...` takes them from FILE, as the server does.");
  o.own_state_dir = state_dir;
  auto state_option = [&](CLI::App* sub) {
    sub->add_option("--state-dir", o.own_state_dir, "Directory of tokens.db (without --cluster)")
        ->capture_default_str();
    sub->add_option("--cluster", o.own_cluster.etcd,
                    "The tokens of the cluster whose etcd this is, not tokens.db: "
                    "etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS)")
        ->group("Cluster");
    sub->add_option("--cluster-prefix", o.own_cluster.prefix,
                    "Prefix of the cluster's keys in etcd")
        ->capture_default_str()
        ->group("Cluster");
    sub->add_option("--cluster-ca", o.own_cluster.ca,
                    "With etcds://: the CA etcd's certificate must chain to")
        ->check(CLI::ExistingFile)
        ->group("Cluster");
    sub->add_option("--node-cert", o.own_cluster.cert,
                    "With etcds://: the certificate (PEM) shown to etcd")
        ->check(CLI::ExistingFile)
        ->group("Cluster");
    sub->add_option("--node-key", o.own_cluster.key, "The private key of --node-cert")
        ->check(CLI::ExistingFile)
        ->group("Cluster");
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

int token_cli::run() {
  options& o = *opt_;
  try {
    std::unique_ptr<token_place> place = o.place();
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
      auto [token, rec] = place->add(o.req);
      std::cout << token << std::endl;
      std::cerr << "Added " << label(rec) << " to " << place->where()
                << ". The token is shown only this once (only its hash is stored).\n"
                << "A client uses it with:  porthole --authtoken " << token
                << " ...   (or authtoken: in ~/.porthole.yml)\n";
      return 0;
    }
    if (o.list->parsed()) {
      std::vector<token_record> all = place->list();
      if (o.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& r : all) {
          out.push_back(to_json(r));
        }
        std::cout << out.dump(2) << "\n";
      } else if (all.empty()) {
        std::cerr << "No tokens in " << place->where() << " (add one with: portholed token add)\n";
      } else {
        print_table(all);
      }
      return 0;
    }
    // revoke
    std::vector<token_record> all = place->list();
    std::vector<token_record> matches;
    for (const auto& r : all) {
      if (all_digits(o.which) ? std::to_string(r.id) == o.which : r.name == o.which) {
        matches.push_back(r);
      }
    }
    if (matches.empty()) {
      std::cerr << "portholed: no token has the " << (all_digits(o.which) ? "id" : "name") << " '"
                << o.which << "' in " << place->where() << " (see portholed token list)\n";
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
    place->revoke(matches[0].id);
    std::cout << "Revoked " << label(matches[0]) << ". " << place->revoke_effect() << "\n";
    if (all.size() == 1) {
      std::cerr << "That was the last token: portholed now refuses every client until a token "
                   "is added (or "
                << place->how_to_open() << ").\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "portholed: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace porthole::portholed
