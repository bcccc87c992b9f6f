#include "proto/messages.h"

#include <gtest/gtest.h>

#include "proto/error.h"
#include "proto/frame.h"

namespace porthole::proto {
namespace {

// Hex of whole frames recorded from ngrok 1.7.1 (shared/reference/ngrok1-frames.md).
std::string unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// Decodes a whole recorded frame: header, then body.
message decode_recorded(std::string_view hex) {
  const std::string frame = unhex(hex);
  std::array<unsigned char, frame_header_size> h;
  std::copy_n(frame.begin(), h.size(), h.begin());
  auto length = decode_frame_length(h, max_control_frame);
  EXPECT_TRUE(length);
  EXPECT_EQ(*length, frame.size() - frame_header_size);
  auto m = decode(std::string_view(frame).substr(frame_header_size));
  EXPECT_TRUE(m) << m.error().message();
  return *m;
}

TEST(Messages, DecodesRecordedNgrokAuth) {
  auto m = decode_recorded(
      "89000000000000007b2254797065223a2241757468222c225061796c6f6164223a7b2256657273696f6e223a2232"
      "222c224d6d5665"
      "7273696f6e223a22312e37222c2255736572223a227365637265742d746f6b656e222c2250617373776f7264223a"
      "22222c224f5322"
      "3a226c696e7578222c2241726368223a22616d643634222c22436c69656e744964223a22227d7d");
  const auto& a = std::get<auth>(m);
  EXPECT_EQ(a.version, "2");
  EXPECT_EQ(a.mm_version, "1.7");
  EXPECT_EQ(a.user, "secret-token");
  EXPECT_EQ(a.os, "linux");
  EXPECT_EQ(a.arch, "amd64");
  EXPECT_EQ(a.client_id, "");
  EXPECT_FALSE(a.ext);
}

TEST(Messages, DecodesRecordedNgrokReqTunnelForTcpWithNameAsSubdomain) {
  auto m = decode_recorded(
      "8d000000000000007b2254797065223a2252657154756e6e656c222c225061796c6f6164223a7b22526571496422"
      "3a22353430616462"
      "6362373137343932356622"
      "2c2250726f746f636f6c223a22746370222c22486f73746e616d65223a22222c22537562646f6d61696e223a2274"
      "637074222c224874"
      "747041757468223a22222c2252656d6f7465506f7274223a353535357d7d");
  const auto& r = std::get<req_tunnel>(m);
  EXPECT_EQ(r.req_id, "540adbcb7174925f");
  EXPECT_EQ(r.protocol, "tcp");
  EXPECT_EQ(r.subdomain, "tcpt");
  EXPECT_EQ(r.remote_port, 5555);
}

TEST(Messages, DecodesRecordedNgrokdStartProxy) {
  auto m = decode_recorded(
      "64000000000000007b2254797065223a22537461727450726f7879222c225061796c6f6164223a7b2255726c223a"
      "22687474703a2f2f"
      "666f6f2e6e67726f6b2e746573743a3236323031222c22436c69656e7441646472223a223132372e302e302e313a"
      "3535333134227d"
      "7d");
  EXPECT_EQ(std::get<start_proxy>(m),
            (start_proxy{"http://foo.ngrok.test:26201", "127.0.0.1:55314"}));
}

TEST(Messages, DecodesRecordedNgrokdRefusal) {
  auto m = decode_recorded(
      "8a000000000000007b2254797065223a224e657754756e6e656c222c225061796c6f6164223a7b22526571496422"
      "3a22222c2255726c"
      "223a22222c2250726f746f636f6c223a22222c224572726f72223a225468652074756e6e656c20687474703a2f2f"
      "666f6f2e6e67726f"
      "6b2e746573743a323632303120697320616c726561647920726567697374657265642e227d7d");
  EXPECT_EQ(std::get<new_tunnel>(m).error,
            "The tunnel http://foo.ngrok.test:26201 is already registered.");
}

TEST(Messages, DecodesRecordedNgrokdReqProxyAndPong) {
  EXPECT_TRUE(std::holds_alternative<req_proxy>(decode_recorded(
      "20000000000000007b2254797065223a2252657150726f7879222c225061796c6f6164223a7b7d7d")));
  EXPECT_TRUE(std::holds_alternative<pong>(
      decode_recorded("1c000000000000007b2254797065223a22506f6e67222c225061796c6f6164223a7b7d7d")));
}

TEST(Messages, EveryMessageSurvivesARoundTrip) {
  const std::vector<message> all = {
      auth{"2", "1.7", "tok", "", "linux", "arm64", "abc", extensions{"0.1.0", 16, {"mux"}}},
      auth_resp{"2", "1.7", "0123", "", extensions{"0.1.0", 8, {}}},
      req_tunnel{"r1", "http+https", "", "foo", "u:p", 0},
      new_tunnel{"r1", "https://foo.example.com", "https", ""},
      req_proxy{},
      reg_proxy{"0123"},
      start_proxy{"tcp://example.com:5555", "[::1]:4000"},
      ping{},
      pong{},
      reg_mux{"0123"},
      close_tunnel{"https://foo.example.com"},
      promote{},
      auth{"2", "1.7", "tok", "", "linux", "amd64", "abc",
           extensions{"0.1.0", 0, {"mux", "standby"}, {}, "", true}},
      auth_resp{"2", "1.7", "0123", "",
                extensions{"0.1.0", 0, {"mux", "standby"}, {"127.0.0.2:443"}, "127.0.0.1:443"}},
  };
  for (const message& m : all) {
    auto back = decode(encode(m));
    ASSERT_TRUE(back) << type_name(m);
    EXPECT_EQ(*back, m) << type_name(m);
  }
}

TEST(Messages, EncodesCloseTunnelWithItsUrl) {
  EXPECT_EQ(encode(close_tunnel{"http://a.example.com"}),
            R"({"Type":"CloseTunnel","Payload":{"Url":"http://a.example.com"}})");
}

TEST(Messages, EncodesAuthByteForByteAsTheNgrokClientDoes) {
  const auth a{"2", "1.7", "secret-token", "", "linux", "amd64", "", std::nullopt};
  EXPECT_EQ(
      encode(a),
      R"({"Type":"Auth","Payload":{"Version":"2","MmVersion":"1.7","User":"secret-token","Password":"",)"
      R"("OS":"linux","Arch":"amd64","ClientId":""}})");
}

TEST(Messages, EncodesStartProxyAndRefusalByteForByteAsNgrokdDoes) {
  EXPECT_EQ(
      encode(start_proxy{"http://foo.ngrok.test:26201", "127.0.0.1:55314"}),
      R"({"Type":"StartProxy","Payload":{"Url":"http://foo.ngrok.test:26201","ClientAddr":"127.0.0.1:55314"}})");
  EXPECT_EQ(
      encode(
          new_tunnel{"", "", "", "The tunnel http://foo.ngrok.test:26201 is already registered."}),
      R"({"Type":"NewTunnel","Payload":{"ReqId":"","Url":"","Protocol":"","Error":"The tunnel )"
      R"(http://foo.ngrok.test:26201 is already registered."}})");
}

TEST(Messages, StartProxyFastPathWritesWhatEncodeWritesAndReadsItBack) {
  for (const start_proxy& m : {start_proxy{"http://foo.ngrok.test:26201", "127.0.0.1:55314"},
                               start_proxy{"tcp://example.com:5555", "[::1]:4000"},
                               start_proxy{"", ""}, start_proxy{"https://a\"b\\c", "x\ny"},
                               start_proxy{"https://caf\xc3\xa9.example", "1.2.3.4:5"}}) {
    const std::string fast = encode_start_proxy(m);
    EXPECT_EQ(fast, encode(m));
    const auto back = decode(fast);
    ASSERT_TRUE(back);
    EXPECT_EQ(std::get<start_proxy>(*back), m);
    // The fast reader takes what it can and leaves the rest to decode().
    if (const auto quick = decode_start_proxy(fast)) {
      EXPECT_EQ(*quick, m);
    }
  }
  EXPECT_EQ(decode_start_proxy(encode(start_proxy{"http://a:1", "b:2"})),
            (start_proxy{"http://a:1", "b:2"}));
}

TEST(Messages, StartProxyFastReaderLeavesOtherShapesToDecode) {
  EXPECT_FALSE(
      decode_start_proxy(R"({"Type":"StartProxy","Payload":{"ClientAddr":"b","Url":"a"}})"));
  EXPECT_FALSE(
      decode_start_proxy(R"({"Type":"StartProxy","Payload":{"Url":"a\u0041","ClientAddr":"b"}})"));
  EXPECT_FALSE(
      decode_start_proxy(R"({ "Type":"StartProxy","Payload":{"Url":"a","ClientAddr":"b"}})"));
  EXPECT_FALSE(
      decode_start_proxy(R"({"Type":"StartProxy","Payload":{"Url":"a","ClientAddr":"b"}}x)"));
  EXPECT_FALSE(
      decode_start_proxy(R"({"Type":"StartProxy","Payload":{"Url":"a"","ClientAddr":"b"}})"));
  EXPECT_FALSE(decode_start_proxy(""));
}

TEST(Messages, EncodesEveryBaseFieldEvenWhenEmpty) {
  const std::string json = encode(new_tunnel{"", "", "", "boom"});
  for (const char* key : {"\"ReqId\"", "\"Url\"", "\"Protocol\"", "\"Error\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
  EXPECT_NE(json.find("\"Type\":\"NewTunnel\""), std::string::npos);
}

TEST(Messages, LeavesOutExtensionsWhenNotNegotiated) {
  EXPECT_EQ(encode(auth_resp{"2", "1.7", "id", "", std::nullopt}).find("Porthole"),
            std::string::npos);
}

TEST(Messages, MatchesKeysCaseInsensitively) {
  auto m =
      decode(R"({"type":"ReqTunnel","payload":{"reqid":"x","PROTOCOL":"tcp","remoteport":22}})");
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<req_tunnel>(*m), (req_tunnel{"x", "tcp", "", "", "", 22}));
}

TEST(Messages, PrefersAnExactKeyOverACaseInsensitiveOne) {
  auto m = decode(R"({"Type":"RegProxy","Payload":{"clientid":"lower","ClientId":"exact"}})");
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<reg_proxy>(*m).client_id, "exact");
}

TEST(Messages, IgnoresUnknownKeys) {
  auto m = decode(R"({"Type":"Ping","Payload":{"Extra":[1,2]},"Other":true})");
  ASSERT_TRUE(m);
  EXPECT_TRUE(std::holds_alternative<ping>(*m));
}

TEST(Messages, TypeNamesAreCaseSensitive) {
  EXPECT_EQ(decode(R"({"Type":"ping","Payload":{}})").error(), error::unknown_type);
}

TEST(Messages, RefusesUnknownType) {
  EXPECT_EQ(decode(R"({"Type":"Hello","Payload":{}})").error(), error::unknown_type);
}

TEST(Messages, RefusesInvalidJson) {
  EXPECT_EQ(decode("{\"Type\":").error(), error::invalid_json);
  EXPECT_EQ(decode("[1,2]").error(), error::invalid_json);
  EXPECT_EQ(decode("").error(), error::invalid_json);
}

TEST(Messages, RefusesMissingType) {
  EXPECT_EQ(decode(R"({"Payload":{}})").error(), error::missing_type);
  EXPECT_EQ(decode(R"({"Type":7})").error(), error::missing_type);
}

TEST(Messages, RefusesFieldsOfTheWrongType) {
  EXPECT_EQ(decode(R"({"Type":"Auth","Payload":{"User":5}})").error(), error::bad_payload);
  EXPECT_EQ(decode(R"({"Type":"Auth","Payload":[]})").error(), error::bad_payload);
}

TEST(Messages, RefusesRemotePortOutOfRange) {
  EXPECT_EQ(decode(R"({"Type":"ReqTunnel","Payload":{"RemotePort":65536}})").error(),
            error::bad_payload);
  EXPECT_EQ(decode(R"({"Type":"ReqTunnel","Payload":{"RemotePort":-1}})").error(),
            error::bad_payload);
}

TEST(Messages, TreatsMissingPayloadAsEmpty) {
  auto m = decode(R"({"Type":"ReqProxy"})");
  ASSERT_TRUE(m);
  EXPECT_TRUE(std::holds_alternative<req_proxy>(*m));
}

TEST(Messages, IgnoresAMalformedExtensionObject) {
  auto m = decode(R"({"Type":"Auth","Payload":{"Version":"2","Porthole":"nonsense"}})");
  ASSERT_TRUE(m);
  EXPECT_FALSE(std::get<auth>(*m).ext);
}

}  // namespace
}  // namespace porthole::proto

namespace porthole::proto {
namespace {

TEST(StartProxyProto, ItsProtoTravelsOnlyWhenSet) {
  const start_proxy h2{"https://a.example", "1.2.3.4:5", "HTTP/2"};
  const std::string encoded = encode_start_proxy(h2);
  EXPECT_NE(encoded.find(R"("Proto":"HTTP/2")"), std::string::npos) << encoded;
  EXPECT_EQ(std::get<start_proxy>(decode(encoded).value()), h2);
  // Without it, ngrokd's exact bytes, as before.
  EXPECT_EQ(encode_start_proxy(start_proxy{"http://a:1", "b:2"}),
            R"({"Type":"StartProxy","Payload":{"Url":"http://a:1","ClientAddr":"b:2"}})");
}

}  // namespace
}  // namespace porthole::proto
