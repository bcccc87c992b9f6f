// porthole: the tunnel client. Parses the command line, wires, runs.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <optional>

#include "client/agent.h"
#include "log/logging.h"
#include "net/address.h"
#include "net/memory.h"

namespace {

using porthole::client::tunnel_spec;

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

}  // namespace

int main(int argc, char** argv) {
  porthole::client::client_config cfg;
  std::string log_target = "stdout";
  std::string log_level = "info";
  std::string trust_ca;
  tunnel_spec http_tunnel;
  tunnel_spec tcp_tunnel;
  tcp_tunnel.protocol = "tcp";
  std::string http_local;
  std::string tcp_local;

  CLI::App app{"porthole " PORTHOLE_VERSION
               ": expose a local service through a porthole (or ngrok 1.x) server.\n\n"
               "  porthole --server-addr tunnel.example.com:443 http 8080\n"
               "  porthole --server-addr tunnel.example.com:443 tcp 22 --remote-port 2222"};
  app.set_version_flag("--version", PORTHOLE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--server-addr", cfg.server_addr, "The server's tunnel address, HOST:PORT");
  app.add_option("--authtoken", cfg.authtoken, "Token the server expects");
  app.add_option("--trust-ca", trust_ca,
                 "Trust this PEM CA certificate for the server (default: system roots)")
      ->check(CLI::ExistingFile);
  app.add_option("--pool-size", cfg.pool_size, "Proxy connections to keep ready at the server")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  int heartbeat = static_cast<int>(cfg.ping_interval.count());
  app.add_option("--heartbeat-interval", heartbeat,
                 "Seconds between heartbeats (Ping) to the server")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  bool no_mux = false;
  app.add_flag("--no-mux", no_mux,
               "Use only ngrok 1.x proxy connections, not porthole's multiplexed connection (for "
               "comparison)");
  porthole::log::add_options(app, log_target, log_level);

  auto* http = app.add_subcommand("http", "Expose a local HTTP service");
  http->add_option("address", http_local, "[HOST:]PORT of the local service")->required();
  http->add_option("--subdomain", http_tunnel.subdomain, "Ask for <subdomain>.<server domain>");
  http->add_option("--hostname", http_tunnel.hostname, "Ask for this full host name");
  http->add_option("--auth", http_tunnel.http_auth, "user:pass required of every public request");
  http->add_option("--proto", http_tunnel.protocol, "Public schemes")
      ->check(CLI::IsMember({"http", "https", "http+https"}))
      ->capture_default_str();

  auto* tcp = app.add_subcommand("tcp", "Expose a local TCP service");
  tcp->add_option("address", tcp_local, "[HOST:]PORT of the local service")->required();
  tcp->add_option("--remote-port", tcp_tunnel.remote_port,
                  "Public port to ask for (default: server's choice)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    porthole::log::configure(log_target, log_level);
    if (cfg.server_addr.empty()) {
      throw std::invalid_argument(
          "no server address: give --server-addr HOST:PORT, the tunnel address of your portholed "
          "(or ngrokd) "
          "server");
    }
    cfg.mux = !no_mux;
    cfg.ping_interval = std::chrono::seconds(heartbeat);
    if (!trust_ca.empty()) {
      cfg.trust_ca = trust_ca;
    }
    if (!http_tunnel.http_auth.empty() && http_tunnel.http_auth.find(':') == std::string::npos) {
      throw std::invalid_argument("--auth wants user:pass");
    }
    if (http->parsed()) {
      set_local_address(http_tunnel, http_local);
      http_tunnel.name = "http";
      cfg.tunnels.push_back(http_tunnel);
    } else {
      set_local_address(tcp_tunnel, tcp_local);
      tcp_tunnel.name = "tcp";
      cfg.tunnels.push_back(tcp_tunnel);
    }
    cfg.proxy = porthole::net::http_proxy::from_environment(
        porthole::net::split_host_port(cfg.server_addr, "443").host);
    if (cfg.proxy) {
      spdlog::info("reaching the server through the HTTP proxy {}:{}", cfg.proxy->host,
                   cfg.proxy->port);
    }

    boost::asio::io_context ioc(1);
    porthole::client::agent agent(ioc, cfg);
    porthole::net::start_memory_trim(ioc.get_executor(), std::chrono::seconds(5));
    boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (!ec) {
        agent.stop();
        ioc.stop();
      }
    });
    std::optional<porthole::client::agent_result> result;
    boost::asio::co_spawn(ioc, agent.run(),
                          [&](std::exception_ptr e, porthole::client::agent_result r) {
                            if (e) {
                              std::rethrow_exception(e);
                            }
                            result = std::move(r);
                            ioc.stop();
                          });
    ioc.run();
    if (result && result->exit_code != 0) {
      if (log_target != "stderr") {
        spdlog::error("{}", result->error);
      }
      std::cerr << "porthole: " << result->error << "\n";
      return result->exit_code;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "porthole: " << e.what() << "\n";
    return 1;
  }
}
