#pragma once
// Which client owns which public name, and which names clients may ask for.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::server {

/// What claiming a name gave.
enum class claim_result {
  claimed,         ///< the name is the client's now
  live_elsewhere,  ///< another client serves it now
  held_elsewhere,  ///< it is held for another client during its reconnect grace period
};

/// Which client owns which public name. A name is an HTTP(S) host name
/// ("myapp.example.com") or a TCP tunnel's URL ("tcp://example.com:20001"),
/// and it belongs to one client whatever the scheme: the schemes the client
/// serves on it (http, https, tcp) are a property of its claim, so no other
/// client can take the other scheme of a name, live or held. Kept behind this
/// small interface so that several portholed nodes can share one registry.
class tunnel_registry {
 public:
  using clock = std::chrono::steady_clock;

  /// A name held for a client after a disconnect, with the schemes it served.
  struct held_name {
    std::string name;
    std::vector<std::string> schemes;
  };

  virtual ~tunnel_registry() = default;

  /// Claims `scheme` of `name` for `client_id`. Succeeds if the name is free,
  /// already the client's (live in any scheme, or held for it after a
  /// disconnect); fails if another client has it, live or within its grace
  /// period.
  virtual claim_result claim(std::string_view name, std::string_view scheme,
                             std::string_view client_id) = 0;

  /// The client stopped serving `scheme` of `name`. Once none of its schemes
  /// is live, the name stays the client's until `hold_until` (the reconnect
  /// grace period); pass clock::now() to give it up at once.
  virtual void release(std::string_view name, std::string_view scheme,
                       std::string_view client_id, clock::time_point hold_until) = 0;

  /// Names of `client_id` held after a disconnect, for reuse when it asks
  /// for a tunnel without naming one.
  virtual std::vector<held_name> held_by(std::string_view client_id) = 0;

  /// True if no scheme of `name` is live and it is held for a client that
  /// disconnected and may come back.
  virtual bool is_held(std::string_view name) = 0;

  /// True if nobody has `name`, live or held.
  virtual bool is_free(std::string_view name) = 0;
};

/// A registry for one server process.
class in_memory_registry final : public tunnel_registry {
 public:
  claim_result claim(std::string_view name, std::string_view scheme,
                     std::string_view client_id) override;
  void release(std::string_view name, std::string_view scheme, std::string_view client_id,
               clock::time_point hold_until) override;
  std::vector<held_name> held_by(std::string_view client_id) override;
  bool is_held(std::string_view name) override;
  bool is_free(std::string_view name) override;

 private:
  struct entry {
    std::string client_id;
    std::set<std::string, std::less<>> live;  ///< schemes served now
    std::set<std::string, std::less<>> held;  ///< schemes given up with a grace period
    std::optional<clock::time_point> held_until;  ///< set while no scheme is live

    bool expired(clock::time_point now) const { return held_until && *held_until <= now; }
  };
  std::map<std::string, entry, std::less<>> entries_;
};

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
