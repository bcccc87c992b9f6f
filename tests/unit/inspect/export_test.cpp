#include "inspect/export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "http/base64.h"
#include "inspect/text.h"

namespace porthole::inspect {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using ::testing::ElementsAre;
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

// The words bash makes of `command`, for the quoting to_curl writes: '...',
// \', $'...' (\\, \xNN), a backslash-newline between words, "|" and comment
// lines. Anything else outside quotes that bash would expand or treat
// specially ($, `, ", (, ;, &, <, >, *, ?, ~, !, a lone backslash) fails the test.
std::vector<std::string> bash_words(std::string_view command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  auto end_word = [&] {
    if (in_word) {
      words.push_back(word);
    }
    word.clear();
    in_word = false;
  };
  std::size_t i = 0;
  while (i < command.size()) {
    const char c = command[i];
    if (c == '#' && !in_word) {
      i = command.find('\n', i);
      continue;
    }
    if (c == ' ' || c == '\n') {
      end_word();
      ++i;
    } else if (c == '\\' && i + 1 < command.size() && command[i + 1] == '\n') {
      end_word();
      i += 2;
    } else if (c == '\\' && i + 1 < command.size() && command[i + 1] == '\'') {
      word += '\'';  // the '\'' of a quote inside '...'
      in_word = true;
      i += 2;
    } else if (c == '\'') {
      const std::size_t close = command.find('\'', i + 1);
      EXPECT_NE(close, std::string_view::npos) << command;
      word += command.substr(i + 1, close - i - 1);
      in_word = true;
      i = close + 1;
    } else if (c == '$' && i + 1 < command.size() && command[i + 1] == '\'') {
      in_word = true;
      for (i += 2; command.at(i) != '\''; ++i) {
        if (command[i] != '\\') {
          word += command[i];
        } else if (command.at(i + 1) == 'x') {
          word += static_cast<char>(std::stoi(std::string(command.substr(i + 2, 2)), nullptr, 16));
          i += 3;
        } else {
          word += command.at(++i);
        }
      }
      ++i;
    } else if (c == '|' && !in_word) {
      words.emplace_back("|");
      ++i;
    } else {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) ||
                  std::string_view("-_.:/@%=,+").find(c) != std::string_view::npos)
          << "'" << c << "' outside quotes in:\n"
          << command;
      word += c;
      in_word = true;
      ++i;
    }
  }
  end_word();
  return words;
}

// What printf's %b writes for `argument` (\\ and \0ooo, as to_curl writes).
std::string printf_b(std::string_view argument) {
  std::string out;
  for (std::size_t i = 0; i < argument.size(); ++i) {
    if (argument[i] != '\\') {
      out += argument[i];
    } else if (argument.at(i + 1) == '\\') {
      out += '\\';
      ++i;
    } else {
      EXPECT_EQ(argument.at(i + 1), '0');
      out += static_cast<char>(std::stoi(std::string(argument.substr(i + 2, 3)), nullptr, 8));
      i += 4;
    }
  }
  return out;
}

// The body the command sends: the argument of --data-raw, or what printf
// pipes into --data-binary @-.
std::string sent_body(const std::vector<std::string>& words) {
  if (words.size() > 3 && words[0] == "printf" && words[1] == "%b" && words[3] == "|") {
    EXPECT_EQ(words.back(), "@-");
    EXPECT_EQ(words[words.size() - 2], "--data-binary");
    return printf_b(words[2]);
  }
  const auto raw = std::find(words.begin(), words.end(), "--data-raw");
  EXPECT_NE(raw, words.end());
  return raw != words.end() && raw + 1 != words.end() ? *(raw + 1) : std::string();
}

// The values of each `option` in `words` (the word after it).
std::vector<std::string> values_of(const std::vector<std::string>& words, std::string_view option) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == option) {
      out.push_back(words[i + 1]);
    }
  }
  return out;
}

// Browser-like headers, so curl's own need no removing.
header_list usual_headers() {
  return {{"Host", "app.example.com"},
          {"User-Agent", "test"},
          {"Accept", "*/*"},
          {"Content-Type", "text/plain"},
          {"Expect", "100-continue"}};
}

TEST(Curl, RepeatsMethodUrlHeadersAndBody) {
  const std::string cmd = to_curl(make_exchange());

  EXPECT_THAT(cmd,
              HasSubstr("curl -X 'POST' --url 'https://app.example.com/form?a=1&b=two+words'"));
  EXPECT_THAT(cmd, HasSubstr("-H 'Cookie: sid=abc; theme=dark'"));
  EXPECT_THAT(cmd, HasSubstr("--data-raw 'name=x&age=42'"));
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
  e.request.body = {std::string("a\n\xff'\\!", 6), 6, false};

  const std::string cmd = to_curl(e);

  EXPECT_THAT(cmd, HasSubstr(R"(-H 'X-Quote: it'\''s')"));
  // No quote or '!' inside $'...': nothing for history expansion to find.
  EXPECT_THAT(cmd, HasSubstr(R"(--data-raw $'a\x0a\xff\x27\\\x21')"));
}

TEST(Curl, ChunkedBodyIsSentDechunkedAndACutBodyIsNamed) {
  exchange e = make_exchange();
  e.request.headers = {{"Transfer-Encoding", "chunked"}};
  e.request.body = {"5\r\nhello\r\n0\r\n\r\n", 15, false};
  exchange cut = make_exchange();
  cut.request.body = {"name=x", 13, true};

  EXPECT_THAT(to_curl(e), HasSubstr("--data-raw 'hello'"));
  EXPECT_THAT(to_curl(e), Not(HasSubstr("Transfer-Encoding")));
  EXPECT_THAT(to_curl(cut), HasSubstr("# the request body was cut at capture: 6 of 13 bytes"));
}

TEST(Curl, EveryFieldIsOneShellWordWhateverItsBytes) {
  const std::string hostile = "$(touch x) `touch y` 'sq' \"dq\" !! \\ ; & | < > * ? ~ #";
  exchange e = make_exchange();
  e.request.method = "`id`$HOME!'#|";  // a token: RFC 9110 allows all of these
  e.request.target = "/$(id)/`id`/'q'/\"d\"/!!/\\?x=$HOME&y=*";
  e.request.headers = usual_headers();
  e.request.headers.emplace_back("X-Hostile", hostile);
  e.request.headers.emplace_back("X-`id`$HOME!#'|&", "a name of tchars");
  e.request.headers.emplace_back("X-Line-Break-Free", "caf\xc3\xa9\ttab");
  const std::string body = hostile + "\nline two\r\n\xff\n";
  e.request.body = {body, body.size(), false};

  const std::vector<std::string> words = bash_words(to_curl(e));

  ASSERT_FALSE(words.empty());
  EXPECT_EQ(words[0], "curl");
  EXPECT_THAT(values_of(words, "-X"), ElementsAre(e.request.method));
  EXPECT_THAT(values_of(words, "--url"), ElementsAre("https://app.example.com" + e.request.target));
  EXPECT_THAT(
      values_of(words, "-H"),
      ElementsAre("User-Agent: test", "Accept: */*", "Content-Type: text/plain",
                  "Expect: 100-continue", "X-Hostile: " + hostile,
                  "X-`id`$HOME!#'|&: a name of tchars", "X-Line-Break-Free: caf\xc3\xa9\ttab"));
  EXPECT_EQ(sent_body(words), body);
}

TEST(Curl, BodyStartingWithAnAtIsSentAsItIsNotReadFromAFile) {
  exchange e = make_exchange();
  e.request.body = {"@/etc/hostname", 14, false};

  const std::string cmd = to_curl(e);

  EXPECT_THAT(cmd, HasSubstr("--data-raw '@/etc/hostname'"));
  EXPECT_THAT(cmd, Not(HasSubstr("--data-binary '@")));
  EXPECT_THAT(cmd, Not(HasSubstr(" -d ")));
}

TEST(Curl, BodyWithANulIsPipedFromPrintfByteForByte) {
  for (const std::string& body :
       {std::string("\0@/etc/hostname\0\xff\r\n$(id)\0", 25),
        std::string("a\0"
                    "1\n",
                    4),
        std::string("no newline at the end\0", 22), std::string("\\0101 \\x41 %s %b\0", 18)}) {
    exchange e = make_exchange();
    e.request.headers = usual_headers();
    e.request.body = {body, body.size(), false};

    const std::string cmd = to_curl(e);
    const std::vector<std::string> words = bash_words(cmd);

    EXPECT_THAT(cmd, ::testing::StartsWith("printf '%b' '"));
    EXPECT_EQ(sent_body(words), body) << cmd;
    EXPECT_THAT(values_of(words, "--data-raw"), ::testing::IsEmpty());
  }
}

TEST(Curl, BodyTooLongForOneArgumentIsPipedFromPrintf) {
  exchange e = make_exchange();
  const std::string body(64 * 1024 + 1, 'a');
  e.request.body = {body, body.size(), false};
  exchange fits = make_exchange();
  const std::string most(64 * 1024, 'a');
  fits.request.body = {most, most.size(), false};

  EXPECT_EQ(sent_body(bash_words(to_curl(e))), body);
  EXPECT_THAT(to_curl(e), HasSubstr("--data-binary @-"));
  EXPECT_THAT(to_curl(fits), HasSubstr("--data-raw 'aaa"));
}

TEST(Curl, HeaderCurlWouldReadFromAFileOrCannotSendIsLeftOutWithANote) {
  exchange e = make_exchange();
  e.request.headers = {{"@/etc/hostname", "x"},
                       {"@/etc/hostname;", ""},
                       {"", "no name"},
                       {"X Space", "v"},
                       {"X-Break", "a\nrm -rf ~"},
                       {"X-Nul", std::string("a\0b", 3)},
                       {"X-Fine", "@/etc/hostname"}};

  const std::string cmd = to_curl(e);
  const std::vector<std::string> words = bash_words(cmd);

  EXPECT_THAT(
      values_of(words, "-H"),
      ElementsAre("X-Fine: @/etc/hostname", "User-Agent:", "Accept:", "Content-Type:", "Expect:"));
  EXPECT_THAT(cmd, HasSubstr("# left out, curl cannot send it: the header '@/etc/hostname' 'x'"));
  EXPECT_THAT(cmd,
              HasSubstr("# left out, curl cannot send it: the header 'X-Break' $'a\\x0arm -rf ~'"));
  // Each note is one comment line: a captured line break cannot end it.
  EXPECT_THAT(cmd, Not(HasSubstr("\nrm -rf")));
}

TEST(Curl, HeaderNamedLikeAnOptionStaysTheArgumentOfH) {
  exchange e = make_exchange();
  e.request.headers = {{"-K", "/etc/hostname"}, {"--config", "x"}};

  EXPECT_THAT(values_of(bash_words(to_curl(e)), "-H"),
              ::testing::IsSupersetOf({"-K: /etc/hostname", "--config: x"}));
}

TEST(Curl, HeadersCurlWouldAddAreRemovedUnlessTheRequestHadThem) {
  exchange bare = make_exchange();
  bare.request.method = "GET";
  bare.request.headers = {{"Host", "app.example.com"}};
  bare.request.body = {};
  exchange post = make_exchange();
  post.request.headers = {{"user-agent", "ua"}};
  exchange browser = make_exchange();
  browser.request.headers = usual_headers();

  EXPECT_THAT(values_of(bash_words(to_curl(bare)), "-H"), ElementsAre("User-Agent:", "Accept:"));
  EXPECT_THAT(values_of(bash_words(to_curl(post)), "-H"),
              ElementsAre("user-agent: ua", "Accept:", "Content-Type:", "Expect:"));
  EXPECT_THAT(to_curl(browser), Not(HasSubstr(":'")));
}

TEST(Curl, TargetIsNeitherGlobbedNorNormalisedByCurl) {
  exchange e = make_exchange();
  e.request.target = "/a/../b[1-2]{c,d}?x=[y]";
  exchange plain = make_exchange();

  const std::vector<std::string> words = bash_words(to_curl(e));

  EXPECT_THAT(values_of(words, "--url"),
              ElementsAre("https://app.example.com/a/../b[1-2]{c,d}?x=[y]"));
  EXPECT_THAT(words, ::testing::Contains("--globoff"));
  EXPECT_THAT(words, ::testing::Contains("--path-as-is"));
  EXPECT_THAT(to_curl(plain), Not(HasSubstr("--globoff")));
  EXPECT_THAT(to_curl(plain), Not(HasSubstr("--path-as-is")));
}

TEST(Curl, TargetCurlCannotTakeFromAUrlIsSentAsTheRequestTarget) {
  for (const std::string target : {"/page#fragment", "*", "http://app.example.com/abs?x=1"}) {
    exchange e = make_exchange();
    e.request.method = "OPTIONS";
    e.request.target = target;

    const std::vector<std::string> words = bash_words(to_curl(e));

    EXPECT_THAT(values_of(words, "--url"), ElementsAre("https://app.example.com/")) << target;
    EXPECT_THAT(values_of(words, "--request-target"), ElementsAre(target));
  }
}

TEST(Curl, PublicUrlThatIsNotHttpOrHttpsAndAHostIsNotExported) {
  for (const std::string url :
       {"file:///etc/hostname", "ftp://app.example.com", "http://user@evil.example",
        "https://app.example.com/path", "https://", "-K/etc/hostname", "http://a b"}) {
    exchange e = make_exchange();
    e.public_url = url;

    const std::string cmd = to_curl(e);

    EXPECT_THAT(cmd, ::testing::StartsWith("# not exported: the tunnel's public URL ")) << url;
    EXPECT_EQ(cmd.find('\n'), cmd.size() - 1) << url;
  }
  exchange ipv6 = make_exchange();
  ipv6.public_url = "http://[::1]:8080";
  EXPECT_THAT(values_of(bash_words(to_curl(ipv6)), "--url"),
              ElementsAre("http://[::1]:8080/form?a=1&b=two+words"));
  EXPECT_THAT(to_curl(ipv6), HasSubstr("--globoff"));
}

TEST(Curl, MethodThatIsNotATokenIsNotExported) {
  exchange e = make_exchange();
  e.request.method = "GET /x HTTP/1.1\r\nX-Injected:";

  const std::string cmd = to_curl(e);

  EXPECT_THAT(cmd, ::testing::StartsWith("# not exported: the method $'GET /x"));
  EXPECT_EQ(cmd.find('\n'), cmd.size() - 1);
}

TEST(Curl, Http10RequestIsSentAsHttp10) {
  exchange e = make_exchange();
  e.request.version = "HTTP/1.0";

  EXPECT_THAT(bash_words(to_curl(e)), ::testing::Contains("--http1.0"));
  EXPECT_THAT(to_curl(make_exchange()), Not(HasSubstr("--http1")));
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
