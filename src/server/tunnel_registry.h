#pragma once
// Which client owns which public URL. Kept behind this small interface so
// that several portholed servers can later share one registry (in Redis);
// the in-memory one serves a single server.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::server {

/// What claiming a URL gave.
enum class claim_result {
  claimed,         ///< the URL is the client's now
  live_elsewhere,  ///< another client serves it now
  held_elsewhere,  ///< it is held for another client during its reconnect grace period
};

class tunnel_registry {
 public:
  using clock = std::chrono::steady_clock;

  virtual ~tunnel_registry() = default;

  /// Claims `url` for `client_id`. Succeeds if the URL is free, already the
  /// client's, or held for the client after a disconnect; fails if another
  /// client holds it (live, or within its grace period).
  virtual claim_result claim(std::string_view url, std::string_view client_id) = 0;

  /// The client stopped serving `url` and keeps it reserved until `hold_until`
  /// (the reconnect grace period); pass clock::now() to free it at once.
  virtual void release(std::string_view url, std::string_view client_id,
                       clock::time_point hold_until) = 0;

  /// URLs of `client_id` held after a disconnect (not live), for reuse when it
  /// asks for a tunnel without naming one.
  virtual std::vector<std::string> held_by(std::string_view client_id) = 0;

  /// True if `url` is held for a client that disconnected and may come back.
  virtual bool is_held(std::string_view url) = 0;
};

/// A registry for one server process.
class in_memory_registry final : public tunnel_registry {
 public:
  claim_result claim(std::string_view url, std::string_view client_id) override;
  void release(std::string_view url, std::string_view client_id,
               clock::time_point hold_until) override;
  std::vector<std::string> held_by(std::string_view client_id) override;
  bool is_held(std::string_view url) override;

 private:
  struct entry {
    std::string client_id;
    std::optional<clock::time_point> held_until;  ///< set while not live

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
