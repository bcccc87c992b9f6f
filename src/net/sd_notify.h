#pragma once
// The service manager's readiness protocol (sd_notify(3)), without libsystemd:
// one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET.

#include <string_view>

namespace porthole::net {

/// Sends `state` (e.g. "READY=1", "STOPPING=1", "STATUS=...") to the service
/// manager when $NOTIFY_SOCKET is set (a path, or "@name" for the abstract
/// namespace). Returns false when it is not set or the send failed; a service
/// not started by systemd (Type=notify) has nothing to tell.
bool sd_notify(std::string_view state);

}  // namespace porthole::net
