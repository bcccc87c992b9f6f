#include "server/ready_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "net/io_loop.h"

namespace porthole::server {
namespace {

using json = nlohmann::json;
namespace asio = boost::asio;

net::tcp::endpoint at(const char* ip, unsigned short port) {
  return {asio::ip::make_address(ip), port};
}

TEST(ReadyFileJson, NamesEveryListenerTheDevCaAndTheVersionOnOneLine) {
  ready_facts facts{.pid = 4242,
                    .domain = "tunnel.example.com",
                    .addresses = {.tunnel = at("127.0.0.1", 4443),
                                  .https = at("127.0.0.1", 8443),
                                  .http = at("::1", 8080),
                                  .admin = at("127.0.0.1", 9180),
                                  .node = at("10.0.0.2", 7946)},
                    .dev_ca = "/var/lib/porthole/ca.pem",
                    .version = "0.1.0"};
  const std::string text = ready_file_json(facts);
  ASSERT_TRUE(text.ends_with("}\n")) << text;
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;
  EXPECT_EQ(json::parse(text), json::parse(R"({"pid": 4242, "domain": "tunnel.example.com",
      "tunnel_addr": "127.0.0.1:4443", "https_addr": "127.0.0.1:8443",
      "http_addr": "[::1]:8080", "admin_addr": "127.0.0.1:9180", "node_addr": "10.0.0.2:7946",
      "dev_ca": "/var/lib/porthole/ca.pem", "version": "0.1.0"})"));
}

TEST(ReadyFileJson, ADisabledListenerAndNoDevCaAreNull) {
  ready_facts facts;
  facts.pid = 1;
  facts.domain = "localhost";
  facts.addresses.tunnel = at("127.0.0.1", 443);
  facts.version = "0.1.0";
  const json doc = json::parse(ready_file_json(facts));
  EXPECT_EQ(doc["tunnel_addr"], "127.0.0.1:443");
  for (const char* key : {"https_addr", "http_addr", "admin_addr", "node_addr", "dev_ca"}) {
    ASSERT_TRUE(doc.contains(key)) << key;
    EXPECT_TRUE(doc[key].is_null()) << key;
  }
}

TEST(ReadyFacts, AStartedServerGivesThePortsItBoundAndItsDevCa) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ready-facts-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  net::io_loop ioc(1);
  server_config cfg;
  cfg.domain = "Example.test";
  cfg.dev = true;
  cfg.state_dir = dir;
  cfg.tunnel_addr = cfg.https_addr = "127.0.0.1:0";
  cfg.http_addr = "127.0.0.1:0";
  cfg.admin_addr = "";
  {
    server srv(ioc, cfg);
    srv.start();
    const ready_facts facts = ready_facts_of(srv);
    EXPECT_EQ(facts.pid, ::getpid());
    EXPECT_EQ(facts.domain, "example.test");
    EXPECT_NE(facts.addresses.tunnel.port(), 0);
    // Port 0 twice is two listeners: the OS chose two ports.
    ASSERT_TRUE(facts.addresses.https);
    EXPECT_NE(facts.addresses.https->port(), facts.addresses.tunnel.port());
    ASSERT_TRUE(facts.addresses.http);
    EXPECT_NE(facts.addresses.http->port(), 0);
    EXPECT_FALSE(facts.addresses.admin);
    EXPECT_EQ(facts.dev_ca, dir / "ca.pem");
    EXPECT_TRUE(std::filesystem::exists(*facts.dev_ca));
    srv.stop();
    ioc.destroy_pending();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace porthole::server
