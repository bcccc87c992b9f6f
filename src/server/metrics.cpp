#include "server/metrics.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace porthole::server {

void add_counts(metrics& into, const metrics& from) {
  const auto add = [](auto& to, const auto& more) {
    for (std::size_t i = 0; i < to.size(); ++i) {
      to[i] += more[i];
    }
  };
  add(into.public_opened, from.public_opened);
  add(into.public_active, from.public_active);
  add(into.bytes_in, from.bytes_in);
  add(into.bytes_out, from.bytes_out);
  add(into.errors, from.errors);
  into.pool_hits += from.pool_hits;
  into.pool_misses += from.pool_misses;
  for (const auto& [type, n] : from.messages_in) {
    into.messages_in[type] += n;
  }
  for (const auto& [type, n] : from.messages_out) {
    into.messages_out[type] += n;
  }
  into.relays_out += from.relays_out;
  into.relays_in += from.relays_in;
  into.relays_refused += from.relays_refused;
  into.relay_bytes_out += from.relay_bytes_out;
  into.relay_bytes_in += from.relay_bytes_in;
}

std::string_view name_of(public_protocol p) {
  switch (p) {
    case public_protocol::http:
      return "http";
    case public_protocol::https:
      return "https";
    case public_protocol::tcp:
      return "tcp";
  }
  return "unknown";
}

std::string_view name_of(error_kind k) {
  static constexpr std::string_view names[] = {
      "auth_refused",      "version_refused",       "tunnel_refused",
      "bad_first_message", "first_message_timeout", "tls_handshake",
      "heartbeat_timeout", "proxy_timeout",         "bad_request",
      "header_timeout",    "response_timeout",      "bad_response",
      "tunnel_not_found",  "basic_auth_refused",    "limit",
      "relay_failed"};
  static_assert(std::size(names) == error_kinds);
  return names[static_cast<std::size_t>(k)];
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void exposition::head(std::string_view name, const labels& l) {
  out_ += name;
  if (!l.empty()) {
    out_ += '{';
    for (std::size_t i = 0; i < l.size(); ++i) {
      out_ += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", l[i].first,
                          escape_label_value(l[i].second));
    }
    out_ += '}';
  }
  out_ += ' ';
}

void exposition::sample(std::string_view name, const labels& l, std::uint64_t value) {
  head(name, l);
  out_ += fmt::format("{}\n", value);
}

void exposition::sample(std::string_view name, const labels& l, double value) {
  head(name, l);
  if (std::isnan(value)) {
    out_ += "NaN\n";
  } else if (std::isinf(value)) {
    out_ += value > 0 ? "+Inf\n" : "-Inf\n";
  } else {
    out_ += fmt::format("{}\n", value);
  }
}

process_stats read_process_stats() {
  process_stats p;
  std::error_code ec;
  std::uint64_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    p.open_fds = fds > 0 ? fds - 1 : 0;  // the directory iterator's own descriptor
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    p.max_fds = lim.rlim_cur;
  }
  const long page = sysconf(_SC_PAGESIZE);
  const long ticks = sysconf(_SC_CLK_TCK);
  if (std::ifstream statm("/proc/self/statm"); statm) {
    std::uint64_t size = 0;
    std::uint64_t resident = 0;
    if (statm >> size >> resident && page > 0) {
      p.resident_memory_bytes = resident * static_cast<std::uint64_t>(page);
    }
  }
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (ticks > 0 && std::getline(stat, line)) {
    // Fields after the command name, which is in parentheses and may hold spaces.
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 1));
      std::vector<std::string> f;
      for (std::string w; rest >> w;) {
        f.push_back(w);
      }
      // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
      if (f.size() > 19) {
        const double utime = std::stod(f[11]);
        const double stime = std::stod(f[12]);
        p.cpu_seconds = (utime + stime) / static_cast<double>(ticks);
        std::ifstream system_stat("/proc/stat");
        for (std::string l; std::getline(system_stat, l);) {
          if (l.starts_with("btime ")) {
            p.start_time_seconds =
                std::stod(l.substr(6)) + std::stod(f[19]) / static_cast<double>(ticks);
            break;
          }
        }
      }
    }
  }
  return p;
}

std::string render_metrics(const metrics& m, const process_stats& p, std::string_view version) {
  exposition e;
  constexpr public_protocol protocols[] = {public_protocol::http, public_protocol::https,
                                           public_protocol::tcp};
  const auto by_protocol = [&](std::string_view name, const auto& values) {
    for (const public_protocol pr : protocols) {
      e.sample(name, {{"protocol", name_of(pr)}}, values[static_cast<std::size_t>(pr)]);
    }
  };

  e.family("porthole_build_info", "gauge", "Always 1; the version of portholed in a label.");
  e.sample("porthole_build_info", {{"version", version}}, std::uint64_t{1});

  e.family("porthole_clients_connected", "gauge", "Tunnel clients with a live control connection.");
  e.sample("porthole_clients_connected", {}, m.clients);

  e.family("porthole_tunnels", "gauge", "Open tunnels, by protocol (http, https, tcp).");
  by_protocol("porthole_tunnels", m.tunnels);

  e.family("porthole_public_connections_opened_total", "counter",
           "Public connections accepted and routed to tunnels' listeners, by protocol.");
  by_protocol("porthole_public_connections_opened_total", m.public_opened);

  e.family("porthole_public_connections_active", "gauge",
           "Public connections open now, by protocol.");
  by_protocol("porthole_public_connections_active", m.public_active);

  e.family("porthole_public_bytes_total", "counter",
           "Bytes on public connections, by protocol: direction=\"in\" read from public "
           "clients (requests), direction=\"out\" written to them (responses). TCP tunnels' "
           "bytes are counted as they move; HTTP(S) bytes include heads and the server's "
           "own answers (404, 502, ...).");
  for (const public_protocol pr : protocols) {
    const auto i = static_cast<std::size_t>(pr);
    e.sample("porthole_public_bytes_total", {{"protocol", name_of(pr)}, {"direction", "in"}},
             m.bytes_in[i]);
    e.sample("porthole_public_bytes_total", {{"protocol", name_of(pr)}, {"direction", "out"}},
             m.bytes_out[i]);
  }

  e.family("porthole_proxy_pool_hits_total", "counter",
           "Public connections that found a proxy connection or multiplexed stream ready at "
           "once.");
  e.sample("porthole_proxy_pool_hits_total", {}, m.pool_hits);
  e.family("porthole_proxy_pool_misses_total", "counter",
           "Public connections that had to wait for the client's next proxy connection.");
  e.sample("porthole_proxy_pool_misses_total", {}, m.pool_misses);

  e.family("porthole_control_messages_total", "counter",
           "Protocol messages on tunnel connections, by type (Auth, ReqTunnel, Ping, ...) and "
           "direction (in: from clients, out: to clients).");
  for (const auto& [type, n] : m.messages_in) {
    e.sample("porthole_control_messages_total", {{"type", type}, {"direction", "in"}}, n);
  }
  for (const auto& [type, n] : m.messages_out) {
    e.sample("porthole_control_messages_total", {{"type", type}, {"direction", "out"}}, n);
  }

  e.family("porthole_errors_total", "counter",
           "Refusals and failures, by kind (see docs/CONFIG.md).");
  for (std::size_t i = 0; i < error_kinds; ++i) {
    e.sample("porthole_errors_total", {{"kind", name_of(static_cast<error_kind>(i))}}, m.errors[i]);
  }

  if (m.cluster) {
    const cluster_figures& c = *m.cluster;
    e.family("porthole_cluster_nodes", "gauge", "Nodes of the cluster registered in etcd.");
    e.sample("porthole_cluster_nodes", {{"node", c.node_id}}, std::uint64_t{c.nodes});
    e.family("porthole_cluster_lease_alive", "gauge",
             "1 while this node's lease in etcd was renewed within its TTL.");
    e.sample("porthole_cluster_lease_alive", {{"node", c.node_id}},
             std::uint64_t{c.lease_alive ? 1u : 0u});
    e.family("porthole_cluster_lease_renewals_total", "counter", "Renewals of the lease.");
    e.sample("porthole_cluster_lease_renewals_total", {}, c.renewals);
    e.family("porthole_cluster_lease_renew_seconds", "gauge",
             "How long the last renewal of the lease took.");
    e.sample("porthole_cluster_lease_renew_seconds", {}, c.last_renew_seconds);
    e.family("porthole_cluster_claims_total", "counter",
             "Claims of names in etcd, by outcome (won, lost to another client).");
    e.sample("porthole_cluster_claims_total", {{"outcome", "won"}}, c.claims_won);
    e.sample("porthole_cluster_claims_total", {{"outcome", "lost"}}, c.claims_lost);
    e.family("porthole_cluster_relayed_connections_total", "counter",
             "Public connections handed between nodes: direction=\"out\" to the node that "
             "serves the name, \"in\" from another node, \"refused\" (stale revision).");
    e.sample("porthole_cluster_relayed_connections_total", {{"direction", "out"}}, m.relays_out);
    e.sample("porthole_cluster_relayed_connections_total", {{"direction", "in"}}, m.relays_in);
    e.sample("porthole_cluster_relayed_connections_total", {{"direction", "refused"}},
             m.relays_refused);
    e.family("porthole_cluster_relayed_bytes_total", "counter",
             "Bytes of relayed connections sent to (out) and received from (in) other nodes.");
    e.sample("porthole_cluster_relayed_bytes_total", {{"direction", "out"}}, m.relay_bytes_out);
    e.sample("porthole_cluster_relayed_bytes_total", {{"direction", "in"}}, m.relay_bytes_in);
  }

  if (p.cpu_seconds) {
    e.family("process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
    e.sample("process_cpu_seconds_total", {}, *p.cpu_seconds);
  }
  if (p.open_fds) {
    e.family("process_open_fds", "gauge", "Open file descriptors.");
    e.sample("process_open_fds", {}, *p.open_fds);
  }
  if (p.max_fds) {
    e.family("process_max_fds", "gauge", "The limit of open file descriptors.");
    e.sample("process_max_fds", {}, *p.max_fds);
  }
  if (p.resident_memory_bytes) {
    e.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    e.sample("process_resident_memory_bytes", {}, *p.resident_memory_bytes);
  }
  if (p.start_time_seconds) {
    e.family("process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch in seconds.");
    e.sample("process_start_time_seconds", {}, *p.start_time_seconds);
  }
  return e.text();
}

}  // namespace porthole::server
