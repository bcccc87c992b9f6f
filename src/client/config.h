#pragma once
// Everything the porthole client can be told, with its defaults.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "net/dialer.h"

namespace porthole::client {

using std::chrono::seconds;

/// One tunnel the client asks the server for.
struct tunnel_spec {
  std::string name;                     ///< for logs and the config file
  std::string protocol = "http+https";  ///< "http", "https", "http+https" or "tcp"
  std::string local_host = "localhost";
  std::string local_port;
  std::string subdomain;
  std::string hostname;
  std::string http_auth;  ///< "user:pass" the server requires of every request
  std::uint16_t remote_port = 0;
  /// How an http tunnel's requests reach the local service: "http1"
  /// (HTTP/1.1, the default) or "http2" (HTTP/2 with prior knowledge, h2c:
  /// what gRPC services need).
  std::string upstream = "http1";

  bool is_http() const { return protocol != "tcp"; }
  std::string local_addr() const { return local_host + ":" + local_port; }
  /// Names one spec among a client's: a config tunnel has one per protocol.
  std::string key() const { return name + "/" + protocol; }

  bool operator==(const tunnel_spec&) const = default;
};

struct client_config {
  std::string server_addr;  ///< host:port of the server's tunnel listener
  std::string authtoken;
  std::optional<std::filesystem::path> trust_ca;  ///< trust this CA; else the system's roots
  std::optional<net::http_proxy> proxy;           ///< reach the server through this HTTP proxy
  int pool_size = 10;  ///< proxy connections to ask the server to keep ready
  bool mux = true;     ///< offer the "mux" extension (streams instead of the pool)
  /// Multiplexed connections to hold (extension "muxes" when above 1): the
  /// server spreads streams over them, so one TLS connection's crypto is not
  /// one core's ceiling. 1-16; 0: one per thread.
  std::size_t mux_connections = 0;
  /// Threads, each with an event loop of its own; the multiplexed
  /// connections are spread over them (docs/THREADS.md). The composition
  /// root starts them (net::shards) and hands the agent their executors.
  std::size_t threads = 1;
  /// Keep a second control connection to another node of a cluster that
  /// offers it (extension "standby", which needs mux), to go on serving
  /// without a gap when the node of the first one goes.
  bool standby = true;
  std::vector<tunnel_spec> tunnels;
  /// The id an earlier run of this client had (see resume_file), offered in
  /// Auth so that the server gives back the URLs it holds for it; empty: the
  /// server chooses.
  std::string client_id;
  seconds dial_timeout{10};
  seconds ping_interval{20};
  seconds pong_timeout{15};
  seconds auth_timeout{15};
  seconds local_dial_timeout{10};
  seconds tcp_idle_timeout{7200};
  /// Idle keep-alive connections to each local HTTP service kept for the next
  /// request (http tunnels); 0: every public connection dials its own.
  std::size_t local_idle_conns = 64;
  /// How long such a connection is kept unused (see local_pool_limits).
  seconds local_idle_timeout{4};
  seconds reconnect_min{1};
  seconds reconnect_max{30};
  seconds leave_timeout{2};  ///< a stopping client's wait to give its URLs back
};

}  // namespace porthole::client
