#include "client/ready_file.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace porthole::client {
namespace {

using json = nlohmann::json;

tunnel_spec spec(std::string name, std::string protocol, std::string port) {
  tunnel_spec t;
  t.name = std::move(name);
  t.protocol = std::move(protocol);
  t.local_port = std::move(port);
  return t;
}

TEST(ReadyFileJson, ListsEachUrlWithItsTunnelProtocolAndLocalAddressOnOneLine) {
  settled_tunnels now;
  now.client_id = "0123abcd";
  now.server = "127.0.0.1:4443";
  now.transport = transport_kind::mux;
  now.connection = 2;
  now.standby = "127.0.0.2:4443";
  const tunnel_spec web = spec("blog", "http+https", "8080");
  now.tunnels = {{web, "http://blog.example.com:8000"},
                 {web, "https://blog.example.com:8443"},
                 {spec("ssh", "tcp", "22"), "tcp://example.com:2222"}};
  const std::string text = ready_file_json(now, 4242, "127.0.0.1:4040");
  ASSERT_TRUE(text.ends_with("}\n")) << text;
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;
  EXPECT_EQ(json::parse(text), json::parse(R"({"pid": 4242, "client_id": "0123abcd",
      "server": "127.0.0.1:4443", "transport": "mux", "connection": 2,
      "standby": "127.0.0.2:4443", "inspect_addr": "127.0.0.1:4040", "tunnels": [
        {"name": "blog", "url": "http://blog.example.com:8000", "proto": "http",
         "local": "localhost:8080"},
        {"name": "blog", "url": "https://blog.example.com:8443", "proto": "https",
         "local": "localhost:8080"},
        {"name": "ssh", "url": "tcp://example.com:2222", "proto": "tcp",
         "local": "localhost:22"}]})"));
}

TEST(ReadyFileJson, NoWebInterfaceIsNullAndNoTunnelsAnEmptyList) {
  settled_tunnels now;
  now.client_id = "ff";
  now.server = "[::1]:443";
  now.transport = transport_kind::ngrok;
  now.connection = 1;
  const json doc = json::parse(ready_file_json(now, 1, std::nullopt));
  EXPECT_TRUE(doc["inspect_addr"].is_null());
  EXPECT_EQ(doc["tunnels"], json::array());
  EXPECT_EQ(doc["server"], "[::1]:443");
  EXPECT_TRUE(doc["standby"].is_null());
}

TEST(TransportKind, IsNamedAsTheReadyFileSaysIt) {
  EXPECT_EQ(to_string(transport_kind::mux), "mux");
  EXPECT_EQ(to_string(transport_kind::pool), "pool");
  EXPECT_EQ(to_string(transport_kind::ngrok), "ngrok");
}

}  // namespace
}  // namespace porthole::client
