#pragma once
// What the agent tells whoever shows its state (the terminal status screen).

#include <chrono>
#include <string>
#include <vector>

#include "client/config.h"
#include "inspect/exchange.h"

namespace porthole::client {

/// A tunnel being served: its spec and the public URL the server gave.
struct live_tunnel {
  tunnel_spec spec;
  std::string url;

  bool operator==(const live_tunnel&) const = default;
};

/// Calls come on the agent's executor, in the order things happen, and must
/// return at once: the agent waits for none of them.
class agent_observer {
 public:
  virtual ~agent_observer() = default;

  /// Dialing the server: the first time, or again after reconnecting().
  virtual void connecting() = 0;
  /// The server accepted the client. `server_version` as it said it: porthole's
  /// version, or an ngrokd's MmVersion ("1.7").
  virtual void online(const std::string& server_version) = 0;
  /// The connection to the server is gone; the next try is at `retry_at`.
  virtual void reconnecting(std::chrono::steady_clock::time_point retry_at) = 0;
  /// The tunnels up now, in configuration order (after each change).
  virtual void tunnels_changed(const std::vector<live_tunnel>& up) = 0;
  /// The server refused the tunnel `t`, saying `error`.
  virtual void tunnel_refused(const tunnel_spec& t, const std::string& error) = 0;
  /// A public connection came through a tunnel, and later ended.
  virtual void connection_opened() = 0;
  virtual void connection_closed() = 0;
  /// An HTTP exchange of an http or https tunnel ended (bodies not kept).
  virtual void exchange_done(const inspect::exchange& e) = 0;
};

}  // namespace porthole::client
