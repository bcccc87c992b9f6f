#pragma once
// portholed's counters and gauges, and their rendering in the Prometheus text
// exposition format (0.0.4) for the admin endpoint's /metrics. Counting is a
// plain increment: everything runs on the server's one io_context thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace porthole::server {

/// How a public connection arrived, a label of several metrics.
enum class public_protocol { http, https, tcp };
inline constexpr std::size_t public_protocols = 3;

/// "http", "https" or "tcp".
std::string_view name_of(public_protocol p);

/// The failures the server tells apart, label `kind` of porthole_errors_total.
enum class error_kind {
  auth_refused,           ///< Auth with an authtoken not accepted
  version_refused,        ///< Auth with a protocol version other than 2
  tunnel_refused,         ///< ReqTunnel answered with an error (name taken, not allowed, ...)
  bad_first_message,      ///< tunnel connection: no Auth/RegProxy/RegMux, or unknown client id
  first_message_timeout,  ///< tunnel connection: no first message in time
  tls_handshake,          ///< TLS handshake failed or timed out (tunnel port or public HTTPS)
  heartbeat_timeout,      ///< client dropped for sending no Ping in time
  proxy_timeout,          ///< no proxy connection from the client in time (HTTP 502, TCP closed)
  bad_request,            ///< public request refused for breaking HTTP/1.1 framing (400, 431, ...)
  header_timeout,         ///< public request head not complete in time (408 or closed)
  response_timeout,       ///< no answer from the local service in time (504)
  bad_response,           ///< the local service's response was not valid HTTP (502)
  tunnel_not_found,       ///< public request for a host no tunnel serves (404)
  basic_auth_refused,     ///< public request without the tunnel's user and password (401)
  limit,         ///< refused or cut off by a connection limit (per IP, per client, handshakes)
  relay_failed,  ///< the node that serves the name could not be reached (502, TCP closed)
};
inline constexpr std::size_t error_kinds = 16;

/// "auth_refused", ...
std::string_view name_of(error_kind k);

/// What a node of a cluster reports of it (/metrics, /healthz).
struct cluster_figures {
  std::string node_id;
  std::size_t nodes = 0;     ///< nodes registered, this one included
  bool lease_alive = false;  ///< renewed within its TTL
  bool lease_lost = false;   ///< etcd said it expired (until a new one is granted)
  std::uint64_t claims_won = 0;
  std::uint64_t claims_lost = 0;  ///< to another client
  std::uint64_t renewals = 0;
  double last_renew_seconds = 0;  ///< how long the last renewal took
};

/// The server's counts. Gauges go up and down with what they count; counters
/// only up. All are read by the admin endpoint at each scrape.
struct metrics {
  std::uint64_t clients = 0;                                    ///< control sessions connected now
  std::array<std::uint64_t, public_protocols> tunnels{};        ///< open now, by protocol
  std::array<std::uint64_t, public_protocols> public_opened{};  ///< public connections accepted
  std::array<std::uint64_t, public_protocols> public_active{};  ///< public connections open now
  std::array<std::uint64_t, public_protocols> bytes_in{};       ///< read from public clients
  std::array<std::uint64_t, public_protocols> bytes_out{};      ///< written to public clients
  std::uint64_t pool_hits = 0;    ///< a proxy connection or stream was ready at once
  std::uint64_t pool_misses = 0;  ///< a public connection had to wait for one
  std::map<std::string_view, std::uint64_t> messages_in;   ///< by type name (static strings)
  std::map<std::string_view, std::uint64_t> messages_out;  ///< by type name (static strings)
  std::array<std::uint64_t, error_kinds> errors{};
  std::uint64_t relays_out = 0;            ///< public connections handed to another node
  std::uint64_t relays_in = 0;             ///< public connections another node handed here
  std::uint64_t relays_refused = 0;        ///< relays refused: the claim's revision was stale
  std::uint64_t relay_bytes_out = 0;       ///< bytes sent to other nodes on relayed connections
  std::uint64_t relay_bytes_in = 0;        ///< bytes received from them
  std::optional<cluster_figures> cluster;  ///< set on a node of a cluster, at each scrape

  void count(error_kind k) { ++errors[static_cast<std::size_t>(k)]; }
  std::uint64_t& opened(public_protocol p) { return public_opened[static_cast<std::size_t>(p)]; }
  std::uint64_t& active(public_protocol p) { return public_active[static_cast<std::size_t>(p)]; }
  std::uint64_t& in(public_protocol p) { return bytes_in[static_cast<std::size_t>(p)]; }
  std::uint64_t& out(public_protocol p) { return bytes_out[static_cast<std::size_t>(p)]; }
  std::uint64_t& tunnels_of(public_protocol p) { return tunnels[static_cast<std::size_t>(p)]; }
};

/// Adds the counts of `from` (another thread's, copied on that thread) to
/// `into`: the counters that only grow, and the public connections open.
/// The figures read at scrape time (clients, tunnels, cluster) are not
/// counters and stay as they are in `into`.
void add_counts(metrics& into, const metrics& from);

/// One public connection, counted as opened when made and as active while it
/// lives. It shares the metrics, so it may outlive the server safely.
class public_conn_count {
 public:
  public_conn_count(std::shared_ptr<metrics> m, public_protocol p) : m_(std::move(m)), p_(p) {
    ++m_->opened(p_);
    ++m_->active(p_);
  }
  ~public_conn_count() { --m_->active(p_); }
  public_conn_count(const public_conn_count&) = delete;
  public_conn_count& operator=(const public_conn_count&) = delete;

 private:
  std::shared_ptr<metrics> m_;
  public_protocol p_;
};

/// The process's own figures, as Prometheus' client libraries name them;
/// each is nullopt where /proc cannot tell it.
struct process_stats {
  std::optional<std::uint64_t> open_fds;
  std::optional<std::uint64_t> max_fds;
  std::optional<std::uint64_t> resident_memory_bytes;
  std::optional<double> start_time_seconds;  ///< since the Unix epoch
  std::optional<double> cpu_seconds;         ///< user + system
};

/// Reads this process's figures from /proc/self.
process_stats read_process_stats();

/// Builds a text exposition (format 0.0.4): each family's HELP and TYPE,
/// then its samples.
class exposition {
 public:
  using labels = std::vector<std::pair<std::string_view, std::string_view>>;

  /// Starts a family; `type` is "counter" or "gauge".
  void family(std::string_view name, std::string_view type, std::string_view help);
  /// One sample of the current family (`suffix` for names such as _total is
  /// part of `name`).
  void sample(std::string_view name, const labels& l, double value);
  void sample(std::string_view name, const labels& l, std::uint64_t value);

  const std::string& text() const { return out_; }

 private:
  void head(std::string_view name, const labels& l);
  std::string out_;
};

/// A label value as the exposition format writes it between quotes:
/// backslash, double quote and line feed escaped.
std::string escape_label_value(std::string_view v);

/// A HELP text as the format writes it: backslash and line feed escaped.
std::string escape_help(std::string_view v);

/// The whole /metrics page.
std::string render_metrics(const metrics& m, const process_stats& p, std::string_view version);

}  // namespace porthole::server
