// portholed: the tunnel server. Parses the command line, wires, runs.

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>

#include "cluster/etcd_client.h"
#include "cluster/make_directory.h"
#include "fs/replaced_file.h"
#include "http/message_parser.h"
#include "log/event.h"
#include "log/logging.h"
#include "net/address.h"
#include "net/io_loop.h"
#include "net/memory.h"
#include "net/sd_notify.h"
#include "net/shards.h"
#include "server/config_file.h"
#include "server/ready_file.h"
#include "server/server.h"
#include "term/crash.h"
#include "token_command.h"

namespace {

std::vector<std::string> read_authtokens(const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    throw std::runtime_error("cannot read the authtokens file " + file);
  }
  std::vector<std::string> tokens;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') {
      continue;
    }
    const auto last = line.find_last_not_of(" \t\r");
    tokens.push_back(line.substr(first, last - first + 1));
  }
  if (tokens.empty()) {
    throw std::runtime_error("the authtokens file " + file + " has no tokens (one per line)");
  }
  return tokens;
}

void parse_port_range(const std::string& text, porthole::server::server_config& cfg) {
  unsigned low = 0;
  unsigned high = 0;
  char dash = 0;
  std::istringstream in(text);
  if (!(in >> low >> dash >> high) || dash != '-' || !in.eof() || low == 0 || high > 65535 ||
      low > high) {
    throw std::runtime_error("--tcp-ports wants LOW-HIGH, two ports with LOW <= HIGH (got '" +
                             text + "')");
  }
  cfg.tcp_port_low = static_cast<std::uint16_t>(low);
  cfg.tcp_port_high = static_cast<std::uint16_t>(high);
}

// Every connection is a descriptor: the soft limit (often 1024) would let a
// flood of connections starve the server long before its own bounds apply.
void raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// The cluster flags go together; a node another node cannot dial is no node.
void check_cluster_config(porthole::server::cluster_config& c) {
  if (!c.enabled()) {
    const bool any = !c.node_addr.empty() || !c.ca.empty() || !c.cert.empty() || !c.key.empty();
    if (any) {
      throw std::runtime_error(
          "--node-addr, --cluster-ca, --node-cert and --node-key are for a cluster node: give "
          "--cluster etcd://HOST:PORT too");
    }
    return;
  }
  if (c.node_addr.empty() || c.ca.empty() || c.cert.empty() || c.key.empty()) {
    throw std::runtime_error(
        "--cluster needs --node-addr HOST:PORT and the node-to-node mutual TLS files "
        "--cluster-ca, --node-cert and --node-key (docs/CLUSTER.md shows how to make them)");
  }
  const auto where = porthole::net::split_host_port(c.node_addr);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(where.host, ec);
  if (where.host.empty() || (!ec && ip.is_unspecified())) {
    throw std::runtime_error("--node-addr " + c.node_addr +
                             ": other nodes dial this address, so it must name this host "
                             "(an IP address or a name), not " +
                             (where.host.empty() ? std::string("all interfaces") : where.host));
  }
  if (c.node_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    c.node_id = host;
  }
  const bool id_ok = !c.node_id.empty() && c.node_id.size() <= 64 &&
                     std::all_of(c.node_id.begin(), c.node_id.end(), [](unsigned char ch) {
                       return std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
                     });
  if (!id_ok) {
    throw std::runtime_error("--node-id '" + c.node_id +
                             "': use 1 to 64 letters, digits, '-', '_' and '.'");
  }
  if (!c.prefix.starts_with('/')) {
    throw std::runtime_error("--cluster-prefix '" + c.prefix + "' must start with '/'");
  }
  try {
    porthole::cluster::parse_cluster_url(c.etcd);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("--cluster: ") + e.what());
  }
}

// A validator: "" or what is wrong, so that a value from --config is checked where it stands.
std::string check_hostname_pattern(const std::string& pattern) {
  const std::string name = pattern.starts_with("*.") ? pattern.substr(2) : pattern;
  if (!porthole::server::valid_hostname(name)) {
    return "wants a host name or *.suffix (got '" + pattern + "')";
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  porthole::term::install_crash_handler(argv[0], {"portholed", PORTHOLE_VERSION, PORTHOLE_BUG_URL});
  porthole::server::server_config cfg;
  std::string authtokens_file;
  std::string tcp_ports;
  std::string log_target = "stderr";
  std::string log_level = "info";
  std::string log_format = "text";
  std::string state_dir = porthole::portholed::default_state_dir();
  std::string ready_file;
  int read_header_timeout = static_cast<int>(cfg.read_header_timeout.count());
  int grace = static_cast<int>(cfg.reconnect_grace.count());

  CLI::App app{
      "portholed " PORTHOLE_VERSION
      ": the porthole tunnel server.\n"
      "Accepts tunnel clients (porthole, or ngrok 1.x) over TLS and routes public HTTP, HTTPS\n"
      "and TCP connections to them by Host header, SNI or port.\n\n"
      "Try it on this machine:  portholed --dev --http-addr 127.0.0.1:8080 --tunnel-addr "
      "127.0.0.1:4443 "
      "--https-addr 127.0.0.1:4443"};
  app.set_version_flag("--version", PORTHOLE_VERSION);
  app.add_option("--domain", cfg.domain, "Public domain; tunnels are <name>.<domain>")
      ->capture_default_str();
  app.add_option("--http-addr", cfg.http_addr, "Public HTTP listener, [HOST]:PORT (\"\" disables)")
      ->capture_default_str();
  app.add_option("--https-addr", cfg.https_addr,
                 "Public HTTPS listener, [HOST]:PORT (\"\" disables)")
      ->capture_default_str();
  app.add_option("--tunnel-addr", cfg.tunnel_addr,
                 "Listener for tunnel clients; when equal to --https-addr one port serves both, "
                 "routed by SNI")
      ->capture_default_str();
  app.add_option("--tls-cert", cfg.tls_cert, "PEM certificate chain for the domain and *.domain")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", cfg.tls_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_flag("--dev", cfg.dev,
               "Development mode: create (once) a private CA and a certificate for the domain in "
               "--state-dir");
  app.add_option("--state-dir", state_dir,
                 "Where --dev keeps its CA and certificate, and tokens.db (`portholed token`)")
      ->capture_default_str()
      ->type_name("DIR");
  app.add_option("--authtokens", authtokens_file,
                 "File of accepted authtokens, one per line, besides tokens.db's (with neither, "
                 "any client is accepted)")
      ->check(CLI::ExistingFile);
  app.add_option("--tcp-bind-addr", cfg.tcp_bind_addr,
                 "Address TCP tunnels listen on (default: all interfaces)");
  app.add_option("--tcp-ports", tcp_ports,
                 "LOW-HIGH: the only ports TCP tunnels may have, asked for or chosen "
                 "(recommended; default: any port from 1024 up that portholed can bind)")
      ->check([](const std::string& text) {
        porthole::server::server_config scratch;
        try {
          parse_port_range(text, scratch);
        } catch (const std::runtime_error& e) {
          return std::string(e.what()).substr(std::string_view("--tcp-ports ").size());
        }
        return std::string();
      });
  app.add_option("--pool-size", cfg.pool_size, "Proxy connections kept ready per client")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--read-header-timeout", read_header_timeout,
                 "Seconds a public request head may take to arrive (408 after)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--header-limit", cfg.header_limit,
                 "Bytes a public request head may have (431 beyond)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1024}, porthole::http::max_header_limit));
  app.add_option("--max-header-fields", cfg.max_header_fields,
                 "Header fields a public request head may have (431 beyond)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, porthole::http::max_max_fields));
  int response_timeout = static_cast<int>(cfg.response_timeout.count());
  app.add_option("--response-timeout", response_timeout,
                 "Seconds a public request may wait on a silent tunnel for its response (504 "
                 "after, if none began)")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--reconnect-grace", grace,
                 "Seconds a disconnected client's URLs stay reserved for it")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  int heartbeat_timeout = static_cast<int>(cfg.ping_timeout.count());
  app.add_option("--heartbeat-timeout", heartbeat_timeout,
                 "Seconds without a heartbeat (Ping) after which a client is dropped")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  int handshake_timeout = static_cast<int>(cfg.tls_handshake_timeout.count());
  app.add_option("--handshake-timeout", handshake_timeout,
                 "Seconds a TLS handshake may take, on the tunnel port and public HTTPS")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  int first_message_timeout = static_cast<int>(cfg.first_message_timeout.count());
  app.add_option("--first-message-timeout", first_message_timeout,
                 "Seconds a tunnel connection may take to send Auth, RegProxy or RegMux")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--max-tunnel-conns-per-ip", cfg.max_tunnel_conns_per_ip,
                 "Open connections one IP address may have on the tunnel port (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-public-conns-per-ip", cfg.max_public_conns_per_ip,
                 "Open connections one IP address may have on the public ports (0: no limit)")
      ->capture_default_str();
  cfg.threads = porthole::net::default_threads();
  app.add_option("--threads", cfg.threads,
                 "Threads serving connections, each with its own event loop (default: one per "
                 "core); the clients' multiplexed connections, and the public connections they "
                 "carry, are spread over them. 1 serves everything on one thread")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--max-handshakes", cfg.max_handshakes,
                 "Connections in TLS handshake or before their first message, all addresses "
                 "together; beyond, the oldest is cut off (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-tunnels-per-client", cfg.max_tunnels_per_client,
                 "Tunnels one client may have open")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--max-conns-per-client", cfg.max_conns_per_client,
                 "Public connections one client may have open at once, over all its tunnels "
                 "(HTTP gets 503 beyond, TCP is closed); 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{10000000}));
  app.add_option("--max-pool-size", cfg.max_pool_size,
                 "Most proxy connections a client may ask to keep ready")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  int pool_idle_timeout = static_cast<int>(cfg.pool_idle_timeout.count());
  app.add_option("--pool-idle-timeout", pool_idle_timeout,
                 "Seconds a ready proxy connection may stay unused before it is replaced")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--allow-hostname", cfg.allowed_hostnames,
                 "A Hostname outside --domain clients may ask for: NAME or *.SUFFIX (repeatable)")
      ->check(check_hostname_pattern);
  app.add_flag("--allow-any-hostname", cfg.allow_any_hostname,
               "Let clients ask for any Hostname, as ngrokd 1.7 did (never --domain itself)");
  bool no_mux = false;
  app.add_flag("--no-mux", no_mux,
               "Do not grant porthole clients the multiplexed connection; use proxy connections");
  app.add_option("--admin-addr", cfg.admin_addr,
                 "Admin endpoint: GET /metrics (Prometheus) and /healthz, [HOST]:PORT (\"\" "
                 "disables; the last one given wins)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--ready-file", ready_file,
                 "Once ready, write its listeners' addresses, the dev CA's path and its pid as "
                 "JSON to this file (replaced whole, removed at exit), for programs that start "
                 "portholed")
      ->type_name("PATH");
  int lease_ttl = static_cast<int>(cfg.cluster.lease_ttl.count());
  auto* cluster_opt =
      app.add_option("--cluster", cfg.cluster.etcd,
                     "Join a cluster of portholed nodes sharing one tunnel namespace in etcd: "
                     "etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS). See docs/CLUSTER.md")
          ->group("Cluster");
  app.add_option("--node-id", cfg.cluster.node_id,
                 "This node's name in the cluster, unique (default: the host name)")
      ->group("Cluster");
  app.add_option("--node-addr", cfg.cluster.node_addr,
                 "HOST:PORT other nodes reach this node at (mutual TLS); an address they can "
                 "dial, not 0.0.0.0")
      ->group("Cluster");
  app.add_option("--cluster-ca", cfg.cluster.ca,
                 "The cluster CA (PEM): the only issuer of node certificates accepted, and of "
                 "etcd's certificate with etcds://")
      ->check(CLI::ExistingFile)
      ->group("Cluster");
  app.add_option("--node-cert", cfg.cluster.cert,
                 "This node's certificate (PEM), issued by --cluster-ca; also shown to etcd")
      ->check(CLI::ExistingFile)
      ->group("Cluster");
  app.add_option("--node-key", cfg.cluster.key, "The private key of --node-cert")
      ->check(CLI::ExistingFile)
      ->group("Cluster");
  app.add_option("--cluster-lease-ttl", lease_ttl,
                 "Seconds a node's names outlive it when it stops renewing its lease in etcd")
      ->capture_default_str()
      ->check(CLI::Range(2, 60))
      ->group("Cluster");
  app.add_option("--cluster-prefix", cfg.cluster.prefix,
                 "Prefix of this cluster's keys in etcd (several clusters may share one etcd)")
      ->capture_default_str()
      ->group("Cluster");
  (void)cluster_opt;
  porthole::log::add_options(app, log_target, log_level, &log_format);
  porthole::server::config_options config;
  porthole::server::add_config_options(app, config);
  porthole::portholed::token_cli tokens(app, cfg, state_dir);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (tokens.chosen()) {
    // `portholed --config FILE token ...` manages the tokens of the state
    // directory or the cluster FILE names, as the server that reads FILE does.
    if (!config.file.empty()) {
      try {
        porthole::server::apply_config_file(app, config.file);
      } catch (const std::exception& e) {
        std::cerr << "portholed: " << e.what() << "\n";
        return 1;
      }
    }
    return tokens.run();
  }

  try {
    if (!config.file.empty()) {
      porthole::server::apply_config_file(app, config.file);
    }
    if (config.print) {
      std::cout << porthole::server::effective_config(app);
      return 0;
    }
    porthole::log::configure(log_target, log_level, nullptr, log_format);
    cfg.state_dir = state_dir;
    cfg.mux = !no_mux;
    cfg.ping_timeout = std::chrono::seconds(heartbeat_timeout);
    cfg.read_header_timeout = std::chrono::seconds(read_header_timeout);
    cfg.response_timeout = std::chrono::seconds(response_timeout);
    cfg.reconnect_grace = std::chrono::seconds(grace);
    cfg.tls_handshake_timeout = std::chrono::seconds(handshake_timeout);
    cfg.first_message_timeout = std::chrono::seconds(first_message_timeout);
    cfg.pool_idle_timeout = std::chrono::seconds(pool_idle_timeout);
    raise_open_file_limit();
    cfg.max_pool_size = std::max(cfg.max_pool_size, cfg.pool_size);
    if (!authtokens_file.empty()) {
      cfg.authtokens = read_authtokens(authtokens_file);
      cfg.require_authtoken = true;
    }
    if (!tcp_ports.empty()) {
      parse_port_range(tcp_ports, cfg);
    }
    if (cfg.tls_cert.empty() != cfg.tls_key.empty()) {
      throw std::runtime_error("--tls-cert and --tls-key go together");
    }
    cfg.cluster.lease_ttl = std::chrono::seconds(lease_ttl);
    check_cluster_config(cfg.cluster);

    // Checked before anything listens: a ready file that cannot be written
    // would leave whoever waits for it waiting.
    std::optional<porthole::fs::replaced_file> ready;
    if (!ready_file.empty()) {
      try {
        ready.emplace(ready_file);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error("cannot write the ready file " + ready_file + ": " + e.what());
      }
    }

    porthole::net::io_loop ioc(1);
    // The threads' loops outlive the server: its connections on them are theirs.
    porthole::net::shards threads(ioc, cfg.threads);
    std::shared_ptr<porthole::server::directory> names;
    std::shared_ptr<porthole::server::token_source> tokens;
    if (cfg.cluster.enabled()) {
      names = porthole::cluster::make_etcd_directory(ioc.get_executor(), cfg.cluster);
      tokens = porthole::cluster::make_etcd_token_source(ioc.get_executor(), cfg.cluster);
      const std::filesystem::path db = cfg.state_dir / "tokens.db";
      if (std::filesystem::exists(db)) {
        porthole::log::warn(
            "a node of a cluster accepts the cluster's tokens, in etcd, not those of tokens.db; "
            "add them with portholed token add --cluster",
            {{"ignored", db.string()}, {"tokens", tokens->where()}});
      }
    }
    porthole::server::server srv(ioc, cfg, names, porthole::server::directory::clock::now, tokens);
    srv.use_shards(threads.executors());
    // However this block ends, the threads stop (and what is pending on
    // them goes) before the server they use.
    struct threads_first {
      porthole::net::shards& threads;
      ~threads_first() {
        threads.stop();
        threads.destroy_pending();
      }
    } stop_threads_first{threads};
    // Before start() logs "ready": a SIGTERM from then on is a clean shutdown.
    boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
    srv.start();
    if (ready) {
      const std::string text =
          porthole::server::ready_file_json(porthole::server::ready_facts_of(srv));
      if (const auto ec = ready->write(text)) {
        throw std::runtime_error("cannot write the ready file " + ready_file + ": " + ec.message());
      }
    }
    porthole::net::start_memory_trim(ioc.get_executor(), std::chrono::seconds(5));
    // PORTHOLE_TEST_HOLD_THREAD=K:SECONDS (tests that the threads work apart):
    // each SIGUSR1 holds thread K that long, in a handler of its own.
    boost::asio::signal_set hold_signal(ioc);
    std::function<void()> wait_hold;
    if (const char* hold = std::getenv("PORTHOLE_TEST_HOLD_THREAD")) {
      unsigned shard = 0;
      unsigned seconds = 0;
      if (std::sscanf(hold, "%u:%u", &shard, &seconds) == 2 && shard < threads.size()) {
        hold_signal.add(SIGUSR1);
        wait_hold = [&, shard, seconds] {
          hold_signal.async_wait([&, shard, seconds](const boost::system::error_code& ec, int) {
            if (ec) {
              return;
            }
            boost::asio::post(threads.executor(shard), [shard, seconds] {
              porthole::log::info("test hook: holding a thread",
                                  {{"thread", std::to_string(shard)}, {"seconds", seconds}});
              std::this_thread::sleep_for(std::chrono::seconds(seconds));
              porthole::log::info("test hook: thread released", {{"thread", std::to_string(shard)}});
            });
            wait_hold();
          });
        };
        wait_hold();
      }
    }
    // Every listener is bound: a Type=notify unit is started now.
    porthole::net::sd_notify("READY=1");

    boost::asio::steady_timer drain(ioc);
    std::function<void()> drain_check;
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) {
        return;
      }
      porthole::log::info("shutting down", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
      porthole::net::sd_notify("STOPPING=1");
      if (ready) {
        ready->remove();  // no longer ready
      }
      srv.stop();
      hold_signal.cancel();
      // Connections in flight get up to two seconds to finish.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      drain_check = [&, deadline] {
        if (srv.active_connections() == 0 || std::chrono::steady_clock::now() >= deadline) {
          ioc.stop();
          return;
        }
        drain.expires_after(std::chrono::milliseconds(20));
        drain.async_wait([&](const boost::system::error_code&) { drain_check(); });
      };
      drain_check();
    });
    ioc.run();
    // What did not finish draining is destroyed while the server it counts
    // itself in is alive (see net::io_loop): the threads' first, once they
    // stopped.
    threads.stop();
    threads.destroy_pending();
    ioc.destroy_pending();
    return 0;
  } catch (const std::exception& e) {
    if (log_target != "stderr") {
      porthole::log::error("portholed stopped on an error", {{"error", e.what()}});
    }
    std::cerr << "portholed: " << e.what() << "\n";
    return 1;
  }
}
