#pragma once
// Everything portholed can be told, with its defaults.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace porthole::server {

using std::chrono::seconds;

/// Membership of a cluster of portholed nodes sharing one tunnel namespace
/// in etcd (docs/CLUSTER.md). Without `etcd` the server is a single node.
struct cluster_config {
  std::string etcd;       ///< "etcd://HOST:PORT[,HOST:PORT...]" or "etcds://..."; empty: one node
  std::string node_id;    ///< this node's name in the cluster (default: the host name)
  std::string node_addr;  ///< the node-to-node listener, HOST:PORT; other nodes dial it
  std::filesystem::path ca;    ///< the cluster CA: the only issuer of node certificates
  std::filesystem::path cert;  ///< this node's certificate (also presented to etcd over etcds://)
  std::filesystem::path key;   ///< its private key
  seconds lease_ttl{5};        ///< the names a node holds vanish this long after it stops renewing
  std::string prefix = "/porthole/";  ///< etcd keys of this cluster start with it

  bool enabled() const { return !etcd.empty(); }
};

struct server_config {
  std::string domain = "localhost";
  std::string http_addr = ":80";     ///< public HTTP; empty disables it
  std::string https_addr = ":443";   ///< public HTTPS; empty disables it
  std::string tunnel_addr = ":443";  ///< tunnel clients; may equal https_addr (routed by SNI)
  std::string admin_addr = "127.0.0.1:9180";  ///< /metrics and /healthz; empty disables it
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  bool dev = false;
  std::filesystem::path state_dir;      ///< --dev's CA and certificate, tokens.db
  std::vector<std::string> authtokens;  ///< empty: any client is accepted
  bool require_authtoken = false;       ///< true when an authtoken file was given
  std::string tcp_bind_addr;            ///< empty: all interfaces
  std::uint16_t tcp_port_low = 0;       ///< 0: the OS chooses server-chosen ports
  std::uint16_t tcp_port_high = 0;
  int pool_size = 10;  ///< proxy connections kept ready per client (the most a client may ask for)
  int max_pool_size = 64;                    ///< cap on what a client may ask for in its extension
  std::size_t max_tunnels_per_client = 256;  ///< ReqTunnel beyond gets a NewTunnel error
  /// Public connections proxied to one client at once (over all its tunnels);
  /// beyond, HTTP gets 503 and TCP is closed. Each may hold a mux stream's
  /// window (1 MiB) of buffered data. 0: no limit.
  std::size_t max_conns_per_client = 4096;
  /// Bounds on all the live clients of one authtoken together (tokens.db and
  /// --authtokens tokens alike; `portholed token add --max-...` sets a token's
  /// own). Beyond, ReqTunnel gets a NewTunnel error, a public HTTP connection
  /// 503 and a TCP one is closed. 0: no limit.
  std::size_t max_tunnels_per_token = 256;
  std::size_t max_tcp_ports_per_token = 16;
  std::size_t max_conns_per_token = 4096;
  /// How often tokens.db is checked for changes (revoked tokens' clients are
  /// closed) and last-used times are written.
  std::chrono::milliseconds token_poll_interval{1000};
  bool mux = true;                    ///< grant the "mux" extension to clients that offer it
  seconds tls_handshake_timeout{10};  ///< tunnel port and public HTTPS
  seconds first_message_timeout{10};  ///< Auth, RegProxy or RegMux after the handshake
  /// Open connections of one IP address on the tunnel port (control, pooled
  /// proxy, mux and not yet identified ones); 0: no limit. One client needs
  /// 1 + its pool (at most max_pool_size) + 1.
  std::size_t max_tunnel_conns_per_ip = 256;
  /// Open connections of one IP address on the public HTTP and HTTPS ports
  /// (and on a port shared with tunnel clients); 0: no limit.
  std::size_t max_public_conns_per_ip = 1024;
  /// Connections in their TLS handshake or waiting for their first message,
  /// all addresses together; beyond, the oldest is cut off. 0: no limit.
  std::size_t max_handshakes = 1024;
  /// Threads, each with an event loop of its own (docs/THREADS.md); the
  /// composition root starts them and hands them to server::use_shards().
  std::size_t threads = 1;
  /// Host names outside `domain` a client may ask for with Hostname: exact
  /// names or "*.suffix" (any name ending in ".suffix").
  std::vector<std::string> allowed_hostnames;
  bool allow_any_hostname = false;  ///< ngrokd 1.7's behaviour: any Hostname
  seconds read_header_timeout{10};  ///< a public request head must arrive within this
  /// While a public request is owed its response, the tunnel must move a byte
  /// at least this often: else 504 if no response began, or the connection closes.
  seconds response_timeout{300};
  seconds http_idle_timeout{75};         ///< idle keep-alive public connection
  seconds tcp_idle_timeout{7200};        ///< idle TCP tunnel connection
  seconds proxy_wait_timeout{30};        ///< wait for a proxy connection when the pool is empty
  seconds pool_idle_timeout{60};         ///< a pooled proxy connection is replaced after this
  seconds ping_timeout{30};              ///< a client that sent no Ping for this long is dropped
  seconds reconnect_grace{60};           ///< a disconnected client's URLs are held this long
  std::size_t header_limit = 32 * 1024;  ///< public request head bound (431 beyond)
  std::size_t max_header_fields = 100;   ///< header fields in a public request head (431 beyond)
  cluster_config cluster;
};

}  // namespace porthole::server
