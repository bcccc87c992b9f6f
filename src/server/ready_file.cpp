#include "server/ready_file.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "net/tls.h"

namespace porthole::server {

namespace {

nlohmann::ordered_json address(const std::optional<net::tcp::endpoint>& ep) {
  return ep ? nlohmann::ordered_json(net::to_string(*ep)) : nlohmann::ordered_json(nullptr);
}

}  // namespace

ready_facts ready_facts_of(const server& srv) {
  const server_config& cfg = srv.config();
  ready_facts facts;
  facts.pid = static_cast<long>(::getpid());
  facts.domain = cfg.domain;
  facts.addresses = srv.listening_addresses();
  facts.version = PORTHOLE_VERSION;
  // As server::start() chooses: --dev's CA serves only when no certificate is given.
  if (cfg.dev && cfg.tls_cert.empty()) {
    std::error_code ec;
    const auto ca = net::dev_ca_certificate(cfg.state_dir);
    const auto absolute = std::filesystem::absolute(ca, ec);
    facts.dev_ca = ec ? ca : absolute;
  }
  return facts;
}

std::string ready_file_json(const ready_facts& facts) {
  const nlohmann::ordered_json doc = {
      {"pid", facts.pid},
      {"domain", facts.domain},
      {"tunnel_addr", net::to_string(facts.addresses.tunnel)},
      {"https_addr", address(facts.addresses.https)},
      {"http_addr", address(facts.addresses.http)},
      {"admin_addr", address(facts.addresses.admin)},
      {"node_addr", address(facts.addresses.node)},
      {"dev_ca", facts.dev_ca ? nlohmann::ordered_json(facts.dev_ca->string())
                              : nlohmann::ordered_json(nullptr)},
      {"version", facts.version},
  };
  return doc.dump() + "\n";
}

}  // namespace porthole::server
