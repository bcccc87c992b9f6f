#pragma once
// Which host names clients may ask for, and what a ReqTunnel's Subdomain or
// Hostname becomes.

#include <string>
#include <string_view>
#include <vector>

namespace porthole::server {

/// Which host names clients may ask for. Names are compared case-folded.
struct hostname_policy {
  std::string domain;                ///< the server's own name; tunnels are <label>.<domain>
  std::vector<std::string> allowed;  ///< Hostname patterns outside domain: "name" or "*.suffix"
  bool allow_any = false;            ///< any Hostname (ngrokd 1.7), except domain itself
};

/// The routing name a ReqTunnel asks for, or why it may not have it.
struct host_choice {
  std::string host;   ///< lower case; empty when refused
  std::string error;  ///< for NewTunnel.Error; empty when accepted
};

/// Subdomain: one DNS label (case-folded) below the domain. Dots are
/// refused: "a.b.<domain>" would sit under another client's "b.<domain>",
/// which could set cookies for it, and is not covered by a *.<domain> certificate.
host_choice choose_subdomain(std::string_view subdomain, const hostname_policy& policy);

/// Hostname: a valid DNS name, never the domain itself (the tunnel clients'
/// name); "<label>.<domain>" as for a subdomain; any other name only if the
/// policy allows it.
host_choice choose_hostname(std::string_view hostname, const hostname_policy& policy);

}  // namespace porthole::server
