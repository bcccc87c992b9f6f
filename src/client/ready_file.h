#pragma once
// What porthole's --ready-file says each time the client's tunnels settle:
// its id, its server, how it is connected and its public URLs, as JSON, for
// programs that start the client (tests, scripts) instead of reading its log.
// The shape is in docs/CONFIG.md.

#include <optional>
#include <string>

#include "client/agent.h"

namespace porthole::client {

/// The file's text: one JSON object, on one line. `inspect_addr` is the
/// local web interface's ip:port (null in the file without one).
std::string ready_file_json(const settled_tunnels& now, long pid,
                            const std::optional<std::string>& inspect_addr);

}  // namespace porthole::client
