#include "inspect/export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/base64.h"
#include "inspect/text.h"

namespace porthole::inspect {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

exchange make_exchange() {
  exchange e;
  e.id = 7;
  e.tunnel_name = "web";
  e.public_url = "https://app.example.com";
  e.remote_addr = "203.0.113.7:51234";
  e.start = std::chrono::sys_time<std::chrono::milliseconds>(1'700'000'000'123ms);
  e.duration = 2500us;
  e.request = {"POST",
               "/form?a=1&b=two+words",
               "HTTP/1.1",
               {{"Host", "app.example.com"},
                {"Content-Type", "application/x-www-form-urlencoded"},
                {"Content-Length", "13"},
                {"Cookie", "sid=abc; theme=dark"}},
               {"name=x&age=42", 13, false}};
  e.response = captured_response{200,
                                 "OK",
                                 "HTTP/1.1",
                                 {{"Content-Type", "application/json"},
                                  {"Set-Cookie", "sid=def; Path=/; HttpOnly"},
                                  {"Content-Length", "11"}},
                                 {R"({"ok":true})", 11, false}};
  return e;
}

std::string gzip(std::string_view text) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
  std::string out(text.size() + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// What HAR 1.2 requires of each object (http://www.softwareishard.com/blog/har-12-spec/):
// the required fields, with their JSON types.
void expect_har_1_2(const json& har) {
  ASSERT_TRUE(har.is_object());
  const json& log = har.at("log");
  EXPECT_EQ(log.at("version"), "1.2");
  EXPECT_TRUE(log.at("creator").at("name").is_string());
  EXPECT_TRUE(log.at("creator").at("version").is_string());
  ASSERT_TRUE(log.at("entries").is_array());
  auto name_values = [](const json& list) {
    ASSERT_TRUE(list.is_array());
    for (const json& nv : list) {
      EXPECT_TRUE(nv.at("name").is_string());
      EXPECT_TRUE(nv.at("value").is_string());
    }
  };
  for (const json& entry : log.at("entries")) {
    EXPECT_TRUE(entry.at("startedDateTime").is_string());
    EXPECT_TRUE(entry.at("time").is_number());
    EXPECT_TRUE(entry.at("cache").is_object());
    const json& timings = entry.at("timings");
    for (const char* t : {"send", "wait", "receive"}) {
      EXPECT_TRUE(timings.at(t).is_number()) << t;
    }
    const json& rq = entry.at("request");
    EXPECT_TRUE(rq.at("method").is_string());
    EXPECT_TRUE(rq.at("url").is_string());
    EXPECT_TRUE(rq.at("httpVersion").is_string());
    name_values(rq.at("cookies"));
    name_values(rq.at("headers"));
    name_values(rq.at("queryString"));
    EXPECT_TRUE(rq.at("headersSize").is_number_integer());
    EXPECT_TRUE(rq.at("bodySize").is_number_integer());
    if (rq.contains("postData")) {
      EXPECT_TRUE(rq["postData"].at("mimeType").is_string());
      EXPECT_TRUE(rq["postData"].contains("text") || rq["postData"].contains("params"));
    }
    const json& rs = entry.at("response");
    EXPECT_TRUE(rs.at("status").is_number_integer());
    EXPECT_TRUE(rs.at("statusText").is_string());
    EXPECT_TRUE(rs.at("httpVersion").is_string());
    name_values(rs.at("cookies"));
    name_values(rs.at("headers"));
    EXPECT_TRUE(rs.at("content").at("size").is_number_integer());
    EXPECT_TRUE(rs.at("content").at("mimeType").is_string());
    EXPECT_TRUE(rs.at("redirectURL").is_string());
    EXPECT_TRUE(rs.at("headersSize").is_number_integer());
    EXPECT_TRUE(rs.at("bodySize").is_number_integer());
  }
}

TEST(Har, HoldsEveryExchangeWithTheFieldsHar12Requires) {
  exchange failed = make_exchange();
  failed.id = 8;
  failed.response.reset();
  failed.error = "local service unreachable";
  const std::vector<exchange> all{make_exchange(), failed};

  const json har = to_har(all, "0.1.0");

  expect_har_1_2(har);
  ASSERT_EQ(har["log"]["entries"].size(), 2u);
  EXPECT_EQ(har["log"]["creator"]["version"], "0.1.0");
  const json& failed_entry = har["log"]["entries"][1];
  EXPECT_EQ(failed_entry["response"]["status"], 0);
  EXPECT_EQ(failed_entry["response"]["_error"], "local service unreachable");
}

TEST(Har, EntryCarriesUrlQueryCookiesFormParamsAndContent) {
  const std::vector<exchange> one{make_exchange()};

  const json entry = to_har(one, "0.1.0")["log"]["entries"][0];

  EXPECT_EQ(entry["startedDateTime"], "2023-11-14T22:13:20.123Z");
  EXPECT_DOUBLE_EQ(entry["time"].get<double>(), 2.5);
  const json& rq = entry["request"];
  EXPECT_EQ(rq["url"], "https://app.example.com/form?a=1&b=two+words");
  EXPECT_EQ(rq["queryString"][1], (json{{"name", "b"}, {"value", "two words"}}));
  EXPECT_EQ(rq["cookies"][1], (json{{"name", "theme"}, {"value", "dark"}}));
  EXPECT_EQ(rq["postData"]["text"], "name=x&age=42");
  EXPECT_EQ(rq["postData"]["params"][1], (json{{"name", "age"}, {"value", "42"}}));
  EXPECT_EQ(rq["bodySize"], 13);
  const json& rs = entry["response"];
  EXPECT_EQ(rs["status"], 200);
  EXPECT_EQ(rs["cookies"][0], (json{{"name", "sid"}, {"value", "def"}}));
  EXPECT_EQ(rs["content"]["text"], R"({"ok":true})");
  EXPECT_EQ(rs["content"]["mimeType"], "application/json");
  EXPECT_EQ(entry["_id"], "7");
}

TEST(Har, ContentIsDecodedAndBinaryContentIsBase64) {
  exchange e = make_exchange();
  const std::string page = "<html>hello hello hello</html>";
  const std::string zipped = gzip(page);
  e.response->headers = {{"Content-Type", "text/html"}, {"Content-Encoding", "gzip"}};
  e.response->body = {zipped, zipped.size(), false};
  exchange binary = make_exchange();
  binary.response->headers = {{"Content-Type", "application/octet-stream"}};
  binary.response->body = {std::string("\xff\x00\x01", 3), 3, false};
  const std::vector<exchange> both{e, binary};

  const json har = to_har(both, "0.1.0");

  const json& text = har["log"]["entries"][0]["response"];
  EXPECT_EQ(text["content"]["text"], page);
  EXPECT_EQ(text["content"]["size"], page.size());
  EXPECT_EQ(text["bodySize"], zipped.size());
  const json& bin = har["log"]["entries"][1]["response"]["content"];
  EXPECT_EQ(bin["encoding"], "base64");
  EXPECT_EQ(http::from_base64(bin["text"].get<std::string>()), std::string("\xff\x00\x01", 3));
}

TEST(Curl, RepeatsMethodUrlHeadersAndBody) {
  const std::string cmd = to_curl(make_exchange());

  EXPECT_THAT(cmd, HasSubstr("curl -X 'POST' 'https://app.example.com/form?a=1&b=two+words'"));
  EXPECT_THAT(cmd, HasSubstr("-H 'Cookie: sid=abc; theme=dark'"));
  EXPECT_THAT(cmd, HasSubstr("--data-binary 'name=x&age=42'"));
  EXPECT_THAT(cmd, Not(HasSubstr("Host:")));
  EXPECT_THAT(cmd, Not(HasSubstr("Content-Length")));
}

TEST(Curl, LeavesTheForwardingHeadersToTheServer) {
  exchange e = make_exchange();
  e.request.headers.emplace_back("X-Forwarded-For", "203.0.113.7");
  e.request.headers.emplace_back("X-Forwarded-Proto", "https");
  e.request.headers.emplace_back("X-Forwarded-Host", "app.example.com");

  EXPECT_THAT(to_curl(e), Not(HasSubstr("X-Forwarded")));
}

TEST(Curl, LeavesEveryFieldTheServerSetsToTheServer) {
  exchange e = make_exchange();
  e.request.headers.emplace_back("X-Forwarded-Port", "443");
  e.request.headers.emplace_back("X-Real-IP", "203.0.113.7");
  e.request.headers.emplace_back("Forwarded", "for=203.0.113.7;proto=https");

  const std::string cmd = to_curl(e);
  EXPECT_THAT(cmd, Not(HasSubstr("X-Forwarded-Port")));
  EXPECT_THAT(cmd, Not(HasSubstr("X-Real-IP")));
  EXPECT_THAT(cmd, Not(HasSubstr("Forwarded:")));
}

TEST(Curl, QuotesQuotesAndWritesOtherBytesAsEscapes) {
  exchange e = make_exchange();
  e.request.method = "PUT";
  e.request.headers = {{"X-Quote", "it's"}};
  e.request.body = {std::string("a\n\xff'\\", 5), 5, false};

  const std::string cmd = to_curl(e);

  EXPECT_THAT(cmd, HasSubstr(R"(-H 'X-Quote: it'\''s')"));
  EXPECT_THAT(cmd, HasSubstr(R"(--data-binary $'a\x0a\xff\'\\')"));
}

TEST(Curl, ChunkedBodyIsSentDechunkedAndACutBodyIsNamed) {
  exchange e = make_exchange();
  e.request.headers = {{"Transfer-Encoding", "chunked"}};
  e.request.body = {"5\r\nhello\r\n0\r\n\r\n", 15, false};
  exchange cut = make_exchange();
  cut.request.body = {"name=x", 13, true};

  EXPECT_THAT(to_curl(e), HasSubstr("--data-binary 'hello'"));
  EXPECT_THAT(to_curl(e), Not(HasSubstr("Transfer-Encoding")));
  EXPECT_THAT(to_curl(cut), HasSubstr("# the request body was cut at capture: 6 of 13 bytes"));
}

TEST(Text, Utf8ValidationRejectsMalformedSequences) {
  EXPECT_TRUE(is_utf8("plain"));
  EXPECT_TRUE(is_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_utf8("\xff"));
  EXPECT_FALSE(is_utf8("\xc3"));              // cut short
  EXPECT_FALSE(is_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(is_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

}  // namespace
}  // namespace porthole::inspect
