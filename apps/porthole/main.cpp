// porthole: the tunnel client. Parses the command line and the config file,
// wires the agent and its local API, runs.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "client/agent.h"
#include "client/config_file.h"
#include "client/inspector.h"
#include "client/local_api.h"
#include "client/ready_file.h"
#include "client/resume_file.h"
#include "client/state_directory.h"
#include "fs/owner_only.h"
#include "fs/replaced_file.h"
#include "inspect/capture_writer.h"
#include "inspect/exchange_json.h"
#include "log/logging.h"
#include "net/address.h"
#include "net/io_loop.h"
#include "net/memory.h"
#include "net/shards.h"
#include "term/crash.h"
#include "term/status_board.h"
#include "term/status_screen.h"
#include "term/terminal.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using porthole::client::config_file;
using porthole::client::tunnel_spec;
using json = nlohmann::json;

constexpr const char* default_inspect_addr = "127.0.0.1:4040";

// "8080", "host:8080" or "[::1]:8080": where the local service listens.
void set_local_address(tunnel_spec& t, const std::string& text) {
  auto hp = porthole::net::split_host_port(
      text.find(':') == std::string::npos && !text.starts_with('[') ? ":" + text : text);
  if (hp.port == "0") {
    throw std::invalid_argument("local port must be 1-65535 (got '" + text + "')");
  }
  t.local_host = hp.host.empty() ? "localhost" : hp.host;
  t.local_port = hp.port;
}

// What the command line said, before the config file fills the gaps.
struct command_line {
  std::string config;  // --config, or empty for the default file
  std::optional<std::string> server_addr, authtoken, trust_ca, http_proxy, inspect_addr, inspect_db,
      ready_file;
  std::optional<int> pool_size;
  std::optional<std::size_t> local_idle_conns;
  std::optional<std::size_t> threads;
  std::optional<int> local_idle_timeout;
  std::string log_target = "stdout";
  std::string log_level = "info";
  bool log_given = false;
  bool log_level_given = false;
};

// The config file: the one named by --config (which must exist), else
// ~/.porthole.yml if there is one. `needed` makes a missing default an error.
std::optional<config_file> read_config(const command_line& cl, bool needed) {
  if (!cl.config.empty()) {
    return porthole::client::load_config_file(cl.config);
  }
  const auto path = porthole::client::default_config_path();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (needed) {
      throw std::invalid_argument("no config file: " + path.string() +
                                  " does not exist; give one with --config FILE (see "
                                  "docs/CONFIG.md)");
    }
    return std::nullopt;
  }
  return porthole::client::load_config_file(path);
}

template <class T>
std::optional<T> first_of(const std::optional<T>& flag, const std::optional<T>& file) {
  return flag ? flag : file;
}

// Which of the file's tunnels `start` serves: the names given, or all.
struct selection {
  std::vector<std::string> names;
  bool all = false;

  /// On a reload, a started name the file no longer defines is closed, not an error.
  std::vector<tunnel_spec> from(const config_file& file, bool reloading = false) const {
    std::vector<std::string> wanted;
    for (const std::string& n : names) {
      if (!reloading || file.find(n) != nullptr) {
        wanted.push_back(n);
      }
    }
    auto specs =
        all ? porthole::client::all_tunnels(file) : porthole::client::select_tunnels(file, wanted);
    if (specs.empty() && !reloading) {
      throw porthole::client::config_error(file.path.string() + ": defines no tunnels to start");
    }
    return specs;
  }
};

// `porthole list`: one line per tunnel and protocol.
int list_tunnels(const config_file& file) {
  if (file.tunnels.empty()) {
    std::cout << file.path.string() << " defines no tunnels\n";
    return 0;
  }
  std::size_t width = 4;
  for (const auto& t : file.tunnels) {
    width = std::max(width, t.name.size());
  }
  for (const auto& t : file.tunnels) {
    for (const tunnel_spec& s : t.specs) {
      std::string where;
      if (!s.hostname.empty()) {
        where = "hostname " + s.hostname;
      } else if (!s.subdomain.empty()) {
        where = "subdomain " + s.subdomain;
      } else if (s.remote_port != 0) {
        where = "remote port " + std::to_string(s.remote_port);
      }
      if (!s.http_auth.empty()) {
        where += where.empty() ? "basic auth" : ", basic auth";
      }
      std::cout << fmt::format("{:<{}}  {:<5}  -> {:<21}  {}\n", t.name, width, s.protocol,
                               s.local_addr(), where);
    }
  }
  return 0;
}

// `porthole reload`: asks the running client, through its local API, to read
// its config file again. Prints what changed.
int request_reload(const std::string& inspect_addr) {
  if (inspect_addr == "disabled") {
    throw std::invalid_argument(
        "the web interface is disabled (inspect_addr: disabled), so there is no local API to "
        "ask; send the running client SIGHUP instead: kill -HUP <pid>");
  }
  const auto hp = porthole::net::split_host_port(inspect_addr);
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  asio::ip::tcp::socket sock(io);
  boost::system::error_code ec;
  const auto endpoints = resolver.resolve(hp.host.empty() ? "127.0.0.1" : hp.host, hp.port, ec);
  if (!ec) {
    asio::connect(sock, endpoints, ec);
  }
  if (ec) {
    throw std::runtime_error("no porthole client answers on " + inspect_addr + " (" + ec.message() +
                             "): is one running with this inspect_addr? (--inspect-addr)");
  }
  beast::http::request<beast::http::string_body> req{beast::http::verb::post, "/api/reload", 11};
  req.set(beast::http::field::host, (hp.host.empty() ? "127.0.0.1" : hp.host) + ":" + hp.port);
  req.prepare_payload();
  beast::http::write(sock, req);
  beast::flat_buffer buf;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(sock, buf, res);
  const json body = json::parse(res.body(), nullptr, false);
  if (res.result() != beast::http::status::ok) {
    const std::string why = body.is_object() && body.contains("error")
                                ? body["error"].get<std::string>()
                                : std::string(res.reason());
    std::cerr << "porthole: reload failed: " << why << "\n";
    return 1;
  }
  std::cout << (body.is_object() && body.contains("summary") ? body["summary"].get<std::string>()
                                                             : res.body())
            << "\n";
  return 0;
}

std::string describe(const porthole::client::agent::tunnel_changes& c) {
  auto names = [](const std::vector<std::string>& keys) {
    std::string out;
    for (const auto& k : keys) {
      out += (out.empty() ? "" : ", ") + k;
    }
    return out.empty() ? std::string() : " (" + out + ")";
  };
  return fmt::format("{} added{}, {} removed{}, {} changed{}, {} unchanged", c.added.size(),
                     names(c.added), c.removed.size(), names(c.removed), c.changed.size(),
                     names(c.changed), c.unchanged);
}

json changes_json(const porthole::client::agent::tunnel_changes& c) {
  return {{"added", c.added},
          {"removed", c.removed},
          {"changed", c.changed},
          {"unchanged", c.unchanged},
          {"summary", "reloaded: " + describe(c)}};
}

// The client once configured: the agent, its web interface and capture, the
// signals it answers and, on a terminal, the status screen. Built from the
// configuration (which may throw, for main to report); run() serves until
// the user or a fatal error stops it.
class running_client {
 public:
  running_client(porthole::client::client_config cfg, const command_line& cl,
                 const std::optional<config_file>& file, const std::string& inspect_addr,
                 const std::optional<std::string>& ready_file, std::optional<selection> started,
                 std::shared_ptr<porthole::term::status_board> board, bool screen,
                 bool log_to_stderr, std::optional<porthole::term::crash_kind> crash)
      : board_(std::move(board)),
        log_to_stderr_(log_to_stderr),
        ioc_(1),
        shards_(ioc_, cfg.threads),
        resume_(resume_dir(), porthole::client::resume_key(cfg.server_addr, cfg.tunnels)),
        agent_(ioc_, resumed(std::move(cfg), resume_), shards_.executors()),
        started_(std::move(started)),
        signals_(ioc_, SIGINT, SIGTERM),
        hangup_(ioc_, SIGHUP) {
    porthole::net::start_memory_trim(ioc_.get_executor(), std::chrono::seconds(5));
    if (ready_file) {
      open_ready_file(*ready_file);  // before anything listens: it may throw
    }
    if (resume_.usable()) {
      agent_.on_client_id([this](const std::string& id) { resume_.save(id); });
    } else {
      spdlog::debug("the client id will not be kept for the next run: {}", resume_.why_not());
    }
    if (started_) {
      reload_path_ = file->path;
    }
    start_web_interface(cl, file, inspect_addr);
    if (board_) {
      agent_.observe(board_.get());
      if (crash) {
        // PORTHOLE_CRASH (tests of the crash report): crash on the network
        // thread, in a handler of its own (not a connection's coroutine,
        // which would log an exception), as the first public connection arrives.
        board_->on_first_connection([this, kind = *crash] {
          asio::post(ioc_, [kind] { porthole::term::crash_now(kind); });
        });
      }
    }
    if (screen) {
      porthole::term::status_screen::options opts;
      opts.colour = porthole::term::shows_colour(STDOUT_FILENO);
      opts.on_quit = [this] { asio::post(ioc_, [this] { shut_down(); }); };
      screen_.emplace(*board_, STDOUT_FILENO, STDIN_FILENO, std::move(opts));
    }
  }

  running_client(const running_client&) = delete;
  running_client& operator=(const running_client&) = delete;

  // Coroutines cut short by stop() are destroyed here, while the agent, the
  // web interface and the captures they use still exist (net::io_loop).
  // The shards' threads stop first: nothing runs beside what is destroyed.
  ~running_client() {
    shards_.stop();
    shards_.destroy_pending();
    ioc_.destroy_pending();
  }

  /// Serves until SIGINT, SIGTERM, q on the status screen, or a fatal error;
  /// returns the exit status.
  int run() {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) {
        shut_down();
      }
    });
    wait_hangup();
    asio::co_spawn(ioc_, agent_.run(),
                   [this](std::exception_ptr e, porthole::client::agent_result r) {
                     if (e) {
                       std::rethrow_exception(e);
                     }
                     result_ = std::move(r);
                     if (screen_ && result_->exit_code != 0) {
                       // Shown until the user has read it and quits.
                       board_->set_offline(result_->error);
                       return;
                     }
                     stop_loop();
                   });
    ioc_.run();
    shards_.stop();
    shards_.destroy_pending();
    ioc_.destroy_pending();
    screen_.reset();  // the terminal as it was, before anything more is said
    if (result_ && result_->exit_code != 0) {
      if (!log_to_stderr_) {
        spdlog::error("{}", result_->error);
      }
      std::cerr << "porthole: " << result_->error << "\n";
      return result_->exit_code;
    }
    return 0;
  }

 private:
  // The agent ends first (giving its URLs back), and its end stops the
  // loop; if it has ended already (offline), this does.
  void shut_down() {
    if (result_) {
      stop_loop();
      return;
    }
    agent_.stop();
  }

  // Where each client keeps its id for the next run (see resume_file).
  static std::filesystem::path resume_dir() {
    return porthole::client::state_directory() / "sessions";
  }

  static porthole::client::client_config resumed(porthole::client::client_config cfg,
                                                 const porthole::client::resume_file& file) {
    cfg.client_id = file.client_id();
    return cfg;
  }

  void stop_loop() {
    if (api_) {
      api_->stop();
    }
    ioc_.stop();
  }

  void wait_hangup() {
    hangup_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) {
        return;
      }
      try {
        reload_file();
      } catch (const std::exception& e) {
        spdlog::error("reload failed, tunnels unchanged: {}", e.what());
      }
      wait_hangup();
    });
  }

  // Re-reads the file: only `start` took its tunnels from it.
  porthole::client::agent::tunnel_changes reload_file() {
    if (!reload_path_) {
      throw std::runtime_error(
          "nothing to reload: this client's tunnels come from the command line, not a config "
          "file (use `porthole start`)");
    }
    const config_file next = porthole::client::load_config_file(*reload_path_);
    auto changes = agent_.update_tunnels(started_->from(next, true));
    spdlog::info("reloaded {}: {}", reload_path_->string(), describe(changes));
    return changes;
  }

  // Checks that `path` can be written, and writes it each time the tunnels settle.
  void open_ready_file(const std::string& path) {
    try {
      ready_.emplace(path);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("cannot write the ready file " + path + ": " + e.what());
    }
    agent_.on_settled([this](const porthole::client::settled_tunnels& now) {
      const auto inspect =
          api_ ? std::optional(porthole::net::to_string(api_->endpoint())) : std::nullopt;
      if (const auto ec =
              ready_->write(porthole::client::ready_file_json(now, ::getpid(), inspect))) {
        spdlog::error("cannot write the ready file {}: {}", ready_->path().string(), ec.message());
      }
    });
  }

  // The web interface first: capture is on only when there is one to show it.
  void start_web_interface(const command_line& cl, const std::optional<config_file>& file,
                           const std::string& inspect_addr) {
    if (inspect_addr == "disabled") {
      return;
    }
    // The default address moves up to the next free port (4041, ...), as a
    // second client on the same machine needs; an address given must be free.
    const bool given = cl.inspect_addr || (file && file->inspect_addr);
    std::string addr = inspect_addr;
    for (int next_port = 4041;; ++next_port) {
      api_.emplace(ioc_, addr);
      try {
        api_->start();
        break;
      } catch (const std::exception& e) {
        api_.reset();
        if (given || next_port > 4049) {
          spdlog::warn("no web interface, so no capture: {}", e.what());
          return;
        }
        spdlog::info("{}; trying port {}", e.what(), next_port);
        addr = "127.0.0.1:" + std::to_string(next_port);
      }
    }

    // Capture into the store the inspector reads.
    const std::size_t body_limit =
        file && file->inspect_body_limit ? *file->inspect_body_limit : 1024 * 1024;
    // A client that moved off the default port is a second one on this
    // machine: its history is its own (replay must reach its own tunnels).
    const auto port = api_->endpoint().port();
    const std::string default_name = inspect_addr == default_inspect_addr && port != 4040
                                         ? "captures-" + std::to_string(port) + ".db"
                                         : std::string("captures.db");
    const std::string default_db = (porthole::client::state_directory() / default_name).string();
    const std::string db =
        first_of(cl.inspect_db, file ? file->inspect_db : std::nullopt).value_or(default_db);
    const std::size_t keep = file && file->inspect_keep ? *file->inspect_keep : 1000;
    captures_ = std::make_shared<porthole::inspect::capture_writer>(
        porthole::inspect::capture_store(db, keep));
    agent_.capture_into(captures_, body_limit);
    spdlog::info("capturing HTTP exchanges into {} (last {} kept)", db, keep);

    inspector_.emplace(ioc_, *api_, agent_, captures_, body_limit);
    api_->handle(beast::http::verb::post, "/api/reload", [this](const auto&) {
      try {
        return porthole::client::local_api::response::json(changes_json(reload_file()).dump());
      } catch (const std::exception& e) {
        spdlog::error("reload failed, tunnels unchanged: {}", e.what());
        return porthole::client::local_api::response::error(beast::http::status::bad_request,
                                                            e.what());
      }
    });
    const std::string url = "http://" + porthole::net::to_string(api_->endpoint());
    spdlog::info("web interface on {}", url);
    if (board_) {
      board_->set_web_interface(url);
    }
  }

  // The board first: connections still open when the io_context goes tell it.
  std::shared_ptr<porthole::term::status_board> board_;
  bool log_to_stderr_;
  porthole::net::io_loop ioc_;
  /// The threads' loops: the multiplexed connections' sockets are theirs,
  /// so they outlive the agent.
  porthole::net::shards shards_;
  porthole::client::resume_file resume_;  ///< before the agent, which reads it
  /// Declared before the agent, which writes it, so that it outlives it; removed at exit.
  std::optional<porthole::fs::replaced_file> ready_;
  porthole::client::agent agent_;
  std::optional<selection> started_;
  std::optional<std::filesystem::path> reload_path_;
  std::optional<porthole::client::local_api> api_;
  std::shared_ptr<porthole::inspect::capture_writer> captures_;
  std::optional<porthole::client::inspector> inspector_;
  asio::signal_set signals_;
  asio::signal_set hangup_;
  std::optional<porthole::client::agent_result> result_;
  std::optional<porthole::term::status_screen> screen_;
};

}  // namespace

int main(int argc, char** argv) {
  porthole::term::install_crash_handler(argv[0], {"porthole", PORTHOLE_VERSION, PORTHOLE_BUG_URL});
  command_line cl;
  porthole::client::client_config cfg;
  tunnel_spec http_tunnel;
  tunnel_spec tcp_tunnel;
  tcp_tunnel.protocol = "tcp";
  std::string http_local;
  std::string tcp_local;
  selection started;
  std::string check_path;

  CLI::App app{"porthole " PORTHOLE_VERSION
               ": expose local services through a porthole (or ngrok 1.x) server.\n\n"
               "  porthole --server-addr tunnel.example.com:443 http 8080\n"
               "  porthole --server-addr tunnel.example.com:443 tcp 22 --remote-port 2222\n"
               "  porthole start blog api        (tunnels named in ~/.porthole.yml)\n"
               "  porthole start --all\n\n"
               "Settings come from the command line, then the config file (--config, default "
               "~/.porthole.yml), then the defaults. See docs/CONFIG.md.\n\n"
               "On a terminal, a status screen shows the tunnels, their connections and the last "
               "HTTP requests (q or Ctrl+C quits); --log stdout gives plain log lines instead, "
               "and --log FILE keeps a log beside the screen."};
  app.set_version_flag("--version", PORTHOLE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--config", cl.config, "YAML config file (default ~/.porthole.yml)");
  app.add_option("--server-addr", cl.server_addr, "The server's tunnel address, HOST:PORT");
  app.add_option("--authtoken", cl.authtoken, "Token the server expects");
  app.add_option("--trust-ca", cl.trust_ca,
                 "Trust this PEM CA certificate for the server (default: system roots)")
      ->check(CLI::ExistingFile);
  app.add_option("--http-proxy", cl.http_proxy,
                 "Reach the server through this HTTP proxy, http://[user:pass@]host:port (default: "
                 "https_proxy/http_proxy from the environment; \"\" for none)");
  app.add_option("--inspect-addr", cl.inspect_addr,
                 "Address of the local web interface and API, HOST:PORT or \"disabled\" (default " +
                     std::string(default_inspect_addr) + ")");
  app.add_option("--inspect-db", cl.inspect_db,
                 "SQLite file keeping the captured HTTP exchanges, or \":memory:\" to keep none on "
                 "disk (default ~/.porthole/captures.db)");
  app.add_option("--ready-file", cl.ready_file,
                 "Write the client's id, server, transport and public URLs as JSON to this file "
                 "each time its tunnels are all up (again after a reconnect or a reload); "
                 "replaced whole, removed at exit. For programs that start porthole")
      ->type_name("PATH");
  app.add_option("--pool-size", cl.pool_size,
                 "Proxy connections to keep ready at the server (default 10)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--local-idle-conns", cl.local_idle_conns,
                 "Idle keep-alive connections to each local HTTP service kept for the next "
                 "request (default 64); 0 dials the service for every public connection")
      ->check(CLI::Range(0, 10000));
  app.add_option("--local-idle-timeout", cl.local_idle_timeout,
                 "Seconds such a connection is kept unused (default 4); keep it below the "
                 "service's own keep-alive time-out")
      ->check(CLI::Range(1, 3600));
  int heartbeat = static_cast<int>(cfg.ping_interval.count());
  app.add_option("--heartbeat-interval", heartbeat,
                 "Seconds between heartbeats (Ping) to the server")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--threads", cl.threads,
                 "Threads serving public connections, each with its own multiplexed "
                 "connection (default: one per core; 1 serves everything on one thread)")
      ->check(CLI::Range(1, 256));
  std::size_t mux_connections = 0;
  app.add_option("--mux-conns", mux_connections,
                 "Multiplexed connections to hold to a porthole server that allows several; "
                 "it spreads public connections over them, so that one TLS connection's "
                 "encryption is not one core's limit (default: one per thread, at most 4)")
      ->check(CLI::Range(1, 16));
  bool no_mux = false;
  app.add_flag("--no-mux", no_mux,
               "Use only ngrok 1.x proxy connections, not porthole's multiplexed connection (for "
               "comparison)");
  bool no_standby = false;
  app.add_flag("--no-standby", no_standby,
               "Keep one control connection only, even to a cluster of portholed nodes that "
               "offers a second, standby one on another node");
  porthole::log::add_options(app, cl.log_target, cl.log_level);

  auto* http = app.add_subcommand("http", "Expose a local HTTP service");
  http->add_option("address", http_local, "[HOST:]PORT of the local service")->required();
  http->add_option("--subdomain", http_tunnel.subdomain, "Ask for <subdomain>.<server domain>");
  http->add_option("--hostname", http_tunnel.hostname, "Ask for this full host name");
  http->add_option("--auth", http_tunnel.http_auth, "user:pass required of every public request");
  http->add_option("--proto", http_tunnel.protocol, "Public schemes")
      ->check(CLI::IsMember({"http", "https", "http+https"}))
      ->capture_default_str();
  http->add_option("--upstream", http_tunnel.upstream,
                   "How requests reach the local service: http1 (HTTP/1.1), or http2 (HTTP/2 "
                   "with prior knowledge, h2c; for gRPC). Public clients may speak either.")
      ->check(CLI::IsMember({"http1", "http2"}))
      ->capture_default_str();

  auto* tcp = app.add_subcommand("tcp", "Expose a local TCP service");
  tcp->add_option("address", tcp_local, "[HOST:]PORT of the local service")->required();
  tcp->add_option("--remote-port", tcp_tunnel.remote_port,
                  "Public port to ask for (default: server's choice)");

  auto* start = app.add_subcommand(
      "start",
      "Start tunnels named in the config file, over one connection. SIGHUP or `porthole reload` "
      "re-reads the file: tunnels added are opened, removed ones closed, changed ones re-opened");
  start->add_option("names", started.names, "Names of tunnels under `tunnels:` in the file");
  start->add_flag("--all", started.all, "Start every tunnel the file defines");

  auto* list = app.add_subcommand("list", "Print the tunnels the config file defines");

  auto* config = app.add_subcommand("config", "Work with the config file");
  config->require_subcommand(1);
  auto* check = config->add_subcommand(
      "check", "Validate a config file without connecting; exits non-zero on an error");
  check->add_option("file", check_path, "The file (default: --config, else ~/.porthole.yml)");

  auto* reload = app.add_subcommand(
      "reload",
      "Ask the running client (through its local API on inspect_addr) to re-read its "
      "config file");

  try {
    app.parse(argc, argv);
    if (start->parsed() && started.all == !started.names.empty()) {
      throw CLI::ValidationError("start", started.all ? "give tunnel names or --all, not both"
                                                      : "give tunnel names, or --all");
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  cl.log_given = app.count("--log") > 0;
  cl.log_level_given = app.count("--log-level") > 0;

  std::unique_ptr<running_client> client;
  try {
    if (check->parsed()) {
      const std::string path = !check_path.empty() ? check_path
                               : !cl.config.empty()
                                   ? cl.config
                                   : porthole::client::default_config_path().string();
      const config_file file = porthole::client::load_config_file(path);
      std::string names;
      for (const auto& t : file.tunnels) {
        names += (names.empty() ? "" : ", ") + t.name;
      }
      std::cout << path << ": OK, " << file.tunnels.size()
                << (file.tunnels.size() == 1 ? " tunnel" : " tunnels")
                << (names.empty() ? "" : " (" + names + ")") << "\n";
      return 0;
    }
    const bool needs_file = start->parsed() || list->parsed();
    const std::optional<config_file> file = read_config(cl, needs_file);
    if (list->parsed()) {
      return list_tunnels(*file);
    }
    const std::string inspect_addr =
        first_of(cl.inspect_addr, file ? file->inspect_addr : std::nullopt)
            .value_or(default_inspect_addr);
    if (reload->parsed()) {
      return request_reload(inspect_addr);
    }

    // The status screen, on a terminal, unless the log is to go there. It
    // shows the log's warnings and errors; the log itself goes nowhere unless
    // a file is given.
    const bool log_chosen = cl.log_given || (file && file->log);
    const std::string log_target = cl.log_given || !file || !file->log ? cl.log_target : *file->log;
    const bool screen = porthole::term::can_draw_on(STDOUT_FILENO) &&
                        !(log_chosen && (log_target == "stdout" || log_target == "stderr"));
    const auto crash = porthole::term::crash_kind_from_env();
    std::shared_ptr<porthole::term::status_board> board;
    if (screen || crash) {
      board = std::make_shared<porthole::term::status_board>(PORTHOLE_VERSION);
    }
    porthole::log::configure(
        screen && !log_chosen ? "none" : log_target,
        cl.log_level_given || !file || !file->log_level ? cl.log_level : *file->log_level,
        screen ? porthole::term::problem_sink(board) : nullptr);
    if (file) {
      spdlog::info("config file {}", file->path.string());
      if (file->authtoken) {
        // A file holding the authtoken is a credential, like an ssh key.
        porthole::fs::warn_if_others_can_read(file->path, "it holds the authtoken");
      }
    }
    cfg.server_addr =
        first_of(cl.server_addr, file ? file->server_addr : std::nullopt).value_or("");
    if (cfg.server_addr.empty()) {
      throw std::invalid_argument(
          "no server address: give --server-addr HOST:PORT (or server_addr in the config file), "
          "the tunnel address of your portholed (or ngrokd) server");
    }
    cfg.authtoken = first_of(cl.authtoken, file ? file->authtoken : std::nullopt).value_or("");
    if (auto ca = first_of(cl.trust_ca, file ? file->trust_ca : std::nullopt)) {
      cfg.trust_ca = *ca;
    }
    cfg.pool_size = first_of(cl.pool_size, file ? file->pool_size : std::nullopt).value_or(10);
    cfg.local_idle_conns =
        first_of(cl.local_idle_conns, file ? file->local_idle_conns : std::nullopt).value_or(64);
    cfg.local_idle_timeout = std::chrono::seconds(
        first_of(cl.local_idle_timeout, file ? file->local_idle_timeout : std::nullopt)
            .value_or(4));
    cfg.mux = !no_mux;
    cfg.mux_connections = mux_connections;
    cfg.threads = first_of(cl.threads, file ? file->threads : std::nullopt)
                      .value_or(porthole::net::default_threads());
    cfg.standby = !no_standby && !no_mux;
    cfg.ping_interval = std::chrono::seconds(heartbeat);

    if (http->parsed()) {
      if (!http_tunnel.http_auth.empty() && http_tunnel.http_auth.find(':') == std::string::npos) {
        throw std::invalid_argument("--auth wants user:pass");
      }
      set_local_address(http_tunnel, http_local);
      http_tunnel.name = "http";
      cfg.tunnels.push_back(http_tunnel);
    } else if (tcp->parsed()) {
      set_local_address(tcp_tunnel, tcp_local);
      tcp_tunnel.name = "tcp";
      cfg.tunnels.push_back(tcp_tunnel);
    } else {
      cfg.tunnels = started.from(*file);
    }

    const std::string server_host = porthole::net::split_host_port(cfg.server_addr, "443").host;
    try {
      cfg.proxy = porthole::net::http_proxy::choose(
          first_of(cl.http_proxy, file ? file->http_proxy : std::nullopt), server_host);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(cl.http_proxy ? "--http-proxy: "
                                              : file && file->http_proxy
                                                  ? file->path.string() + ": http_proxy: "
                                                  : "") +
                                  e.what());
    }
    if (cfg.proxy) {
      spdlog::info("reaching the server through the HTTP proxy {}:{}", cfg.proxy->host,
                   cfg.proxy->port);
    }

    porthole::client::make_private_directory(porthole::client::state_directory());
    client = std::make_unique<running_client>(
        std::move(cfg), cl, file, inspect_addr,
        first_of(cl.ready_file, file ? file->ready_file : std::nullopt),
        start->parsed() ? std::optional(started) : std::nullopt, std::move(board), screen,
        log_target == "stderr", crash);
  } catch (const std::exception& e) {
    std::cerr << "porthole: " << e.what() << "\n";
    return 1;
  }
  // Outside the try: an exception that escapes the running client is a bug,
  // and the crash report shows where it was thrown.
  return client->run();
}
