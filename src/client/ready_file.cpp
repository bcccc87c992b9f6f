#include "client/ready_file.h"

#include <nlohmann/json.hpp>

namespace porthole::client {

std::string ready_file_json(const settled_tunnels& now, long pid,
                            const std::optional<std::string>& inspect_addr) {
  using json = nlohmann::ordered_json;
  json tunnels = json::array();
  for (const live_tunnel& t : now.tunnels) {
    // A URL's scheme is its protocol: an "http+https" spec has one URL of each.
    const auto scheme_end = t.url.find("://");
    tunnels.push_back({{"name", t.spec.name},
                       {"url", t.url},
                       {"proto", t.url.substr(0, scheme_end)},
                       {"local", t.spec.local_addr()}});
  }
  const json doc = {
      {"pid", pid},
      {"client_id", now.client_id},
      {"server", now.server},
      {"transport", std::string(to_string(now.transport))},
      {"connection", now.connection},
      {"standby", now.standby.empty() ? json(nullptr) : json(now.standby)},
      {"inspect_addr", inspect_addr ? json(*inspect_addr) : json(nullptr)},
      {"tunnels", tunnels},
  };
  return doc.dump() + "\n";
}

}  // namespace porthole::client
