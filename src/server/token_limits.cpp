#include "server/token_limits.h"

#include "server/control_session.h"

namespace porthole::server {
namespace {

std::string which_limit(bool own, std::string_view server_flag, std::string_view token_flag) {
  return own ? "its own limit, token add " + std::string(token_flag)
             : "the server's " + std::string(server_flag);
}

}  // namespace

std::string tunnel_limit_refusal(const token_identity& who, token_usage used, std::size_t adding,
                                 bool tcp) {
  const token_limits& l = who.limits;
  if (l.max_tunnels != 0 && used.tunnels + adding > l.max_tunnels) {
    return "Too many tunnels: this authtoken may have " + std::to_string(l.max_tunnels) +
           " open at once over all its clients, and they have " + std::to_string(used.tunnels) +
           " (" + which_limit(who.own_tunnels, "--max-tunnels-per-token", "--max-tunnels") + ").";
  }
  if (tcp && l.max_tcp_ports != 0 && used.tcp_ports + adding > l.max_tcp_ports) {
    return "Too many TCP ports: this authtoken may have " + std::to_string(l.max_tcp_ports) +
           " tcp tunnels open at once over all its clients, and they have " +
           std::to_string(used.tcp_ports) + " (" +
           which_limit(who.own_tcp_ports, "--max-tcp-ports-per-token", "--max-tcp-ports") + ").";
  }
  return "";
}

token_usage token_account::usage() {
  std::erase_if(sessions, [](const auto& s) { return s.expired(); });
  token_usage used;
  for (const auto& weak : sessions) {
    auto s = weak.lock();
    if (!s || s->closed()) {
      continue;
    }
    for (const auto& t : s->tunnels()) {
      if (t->standby) {
        continue;  // the same tunnel as on the client's main node
      }
      ++used.tunnels;
      used.tcp_ports += t->protocol == "tcp" ? 1 : 0;
    }
  }
  return used;
}

}  // namespace porthole::server
