#include "http/forwarding.h"

#include <gtest/gtest.h>

#include <string>

#include "http/message_parser.h"

namespace porthole::http {
namespace {

// routing_host

TEST(RoutingHost, LowerCasesTheName) {
  EXPECT_EQ(routing_host("Foo.Example.COM"), "foo.example.com");
}

TEST(RoutingHost, RemovesThePort) {
  EXPECT_EQ(routing_host("foo.example.com:8080"), "foo.example.com");
}

TEST(RoutingHost, KeepsIpv6BracketsAndRemovesThePort) {
  EXPECT_EQ(routing_host("[::1]:80"), "[::1]");
  EXPECT_EQ(routing_host("[2001:DB8::1]"), "[2001:db8::1]");
}

TEST(RoutingHost, TrailingDotNamesTheSameHost) {
  EXPECT_EQ(routing_host("foo.example.com."), "foo.example.com");
  EXPECT_EQ(routing_host("Foo.Example.com.:443"), "foo.example.com");
}

TEST(RoutingHost, EmptyHostIsEmpty) {
  EXPECT_EQ(routing_host(""), "");
}

// basic_auth_matches

// "user:secret" in base64.
constexpr std::string_view user_secret = "dXNlcjpzZWNyZXQ=";

TEST(BasicAuth, RightCredentialsMatch) {
  EXPECT_TRUE(basic_auth_matches("Basic " + std::string{user_secret}, "user:secret"));
}

TEST(BasicAuth, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(basic_auth_matches("bAsIc " + std::string{user_secret}, "user:secret"));
}

TEST(BasicAuth, WrongPasswordDoesNotMatch) {
  EXPECT_FALSE(basic_auth_matches("Basic " + std::string{user_secret}, "user:secreT"));
  EXPECT_FALSE(basic_auth_matches("Basic " + std::string{user_secret}, "user:secret2"));
}

TEST(BasicAuth, OtherSchemeDoesNotMatch) {
  EXPECT_FALSE(basic_auth_matches("Bearer " + std::string{user_secret}, "user:secret"));
  EXPECT_FALSE(basic_auth_matches("Basicx " + std::string{user_secret}, "user:secret"));
}

TEST(BasicAuth, MalformedBase64DoesNotMatch) {
  // The valid prefix decodes to "user:secret"; the stray characters must not be ignored.
  EXPECT_FALSE(basic_auth_matches("Basic dXNlcjpzZWNyZXQ=!!!!", "user:secret"));
  EXPECT_FALSE(basic_auth_matches("Basic dXNlcjpzZWNyZXQ", "user:secret"));
  EXPECT_FALSE(basic_auth_matches("Basic dXNl*jpzZWNyZXQ=", "user:secret"));
  EXPECT_FALSE(basic_auth_matches("Basic dXNlcjpzZW=yZXQ=", "user:secret"));
}

TEST(BasicAuth, MissingCredentialsDoNotMatch) {
  EXPECT_FALSE(basic_auth_matches("", "user:secret"));
  EXPECT_FALSE(basic_auth_matches("Basic", "user:secret"));
  EXPECT_FALSE(basic_auth_matches("Basic ", ""));
}

TEST(BasicAuth, SurroundingWhitespaceIsIgnored) {
  EXPECT_TRUE(basic_auth_matches("  Basic   " + std::string{user_secret} + " ", "user:secret"));
}

// add_forwarded_fields

const forwarded_for client{.client_ip = "203.0.113.7", .proto = "https", .host = "a.example"};

TEST(AddForwardedFields, AddsAllThreeFieldsBeforeTheEmptyLine) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nHost: a.example\r\n"
            "X-Forwarded-For: 203.0.113.7\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: a.example\r\n"
            "\r\n");
}

TEST(AddForwardedFields, AppendsTheClientToAnExistingForwardedFor) {
  const std::string head =
      "GET / HTTP/1.1\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2\r\nHost: a.example\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 203.0.113.7\r\n"
            "Host: a.example\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: a.example\r\n"
            "\r\n");
}

TEST(AddForwardedFields, AppendsToTheLastOfSeveralForwardedForLines) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n";
  forwarded_for only_ip;
  only_ip.client_ip = "203.0.113.7";
  EXPECT_EQ(add_forwarded_fields(head, only_ip),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-For: 10.0.0.2, 203.0.113.7\r\n\r\n");
}

TEST(AddForwardedFields, ReplacesClientSuppliedProtoAndHost) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\nHost: a.example\r\n"
      "X-FORWARDED-HOST: evil.example\r\n\r\n";
  const std::string out = add_forwarded_fields(head, client);
  EXPECT_EQ(out,
            "GET / HTTP/1.1\r\nHost: a.example\r\n"
            "X-Forwarded-For: 203.0.113.7\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: a.example\r\n"
            "\r\n");
  EXPECT_EQ(out.find("evil"), std::string::npos);
}

TEST(AddForwardedFields, DropsTheFoldedLinesOfAReplacedField) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Host: evil\r\n  .example\r\nAccept: */*\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nAccept: */*\r\n"
            "X-Forwarded-For: 203.0.113.7\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: a.example\r\n"
            "\r\n");
}

TEST(AddForwardedFields, EmptyProtoAndHostOnlyRemoveClientSuppliedFields) {
  const std::string head = "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n";
  forwarded_for only_ip;
  only_ip.client_ip = "203.0.113.7";
  EXPECT_EQ(add_forwarded_fields(head, only_ip),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
}

TEST(AddForwardedFields, KeepsEveryOtherByteAsItWas) {
  const std::string fields =
      "GET /p?q=1 HTTP/1.1\r\n"
      "Host:a.example\r\n"
      "X-Odd-Spacing:   two  spaces  \r\n"
      "cookie: a=b; c=d\r\n"
      "X-Forwarded-Protocol: not-the-same-field\r\n";
  const std::string out = add_forwarded_fields(fields + "\r\n", client);
  EXPECT_EQ(out.substr(0, fields.size()), fields);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

TEST(AddForwardedFields, ResultParsesAsTheSameRequest) {
  const std::string head =
      "POST /x HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 10.0.0.1\r\n"
      "Content-Length: 3\r\n\r\n";
  request_parser parser;
  const auto r = parser.parse(add_forwarded_fields(head, client));
  ASSERT_FALSE(r.error);
  ASSERT_TRUE(r.head_complete);
  EXPECT_EQ(parser.head().target, "/x");
  EXPECT_EQ(parser.head().find("X-Forwarded-For"), "10.0.0.1, 203.0.113.7");
  EXPECT_EQ(parser.head().find("X-Forwarded-Proto"), "https");
  EXPECT_EQ(parser.head().find("X-Forwarded-Host"), "a.example");
  EXPECT_EQ(parser.head().find("Content-Length"), "3");
}

TEST(AddForwardedFields, ValuesCannotInjectHeaderLines) {
  const forwarded_for hostile{.client_ip = "1.2.3.4", .proto = "https", .host = "a\r\nX-Evil: 1"};
  const std::string out = add_forwarded_fields("GET / HTTP/1.1\r\n\r\n", hostile);
  EXPECT_EQ(out.find("\r\nX-Evil"), std::string::npos);
}

// error_response

TEST(ErrorResponse, IsAWellFormedResponse) {
  const std::string response = error_response(404, "Not Found", "Tunnel a.example not found");
  response_parser parser;
  parser.expect("GET");
  const auto head = parser.parse(response);
  ASSERT_FALSE(head.error);
  ASSERT_TRUE(head.head_complete);
  EXPECT_EQ(parser.head().status, 404u);
  EXPECT_EQ(parser.head().reason, "Not Found");
  EXPECT_EQ(parser.head().find("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(parser.head().find("Connection"), "close");
  EXPECT_FALSE(parser.head().keep_alive);
  const auto body = parser.parse(std::string_view{response}.substr(head.consumed));
  EXPECT_TRUE(body.message_complete);
  EXPECT_EQ(head.consumed + body.consumed, response.size());
}

TEST(ErrorResponse, ContentLengthEqualsTheBodyLength) {
  const std::string response = error_response(502, "Bad Gateway", "no agent is connected");
  const std::size_t body_start = response.find("\r\n\r\n") + 4;
  const std::string body = response.substr(body_start);
  EXPECT_NE(response.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(body.find("no agent is connected"), std::string::npos);
  EXPECT_NE(body.find("502"), std::string::npos);
}

TEST(ErrorResponse, EscapesHtmlInTheMessage) {
  const std::string response =
      error_response(400, "Bad Request", "<script>alert(\"x\")</script> & 'y'");
  const std::string body = response.substr(response.find("\r\n\r\n") + 4);
  EXPECT_EQ(body.find("<script>"), std::string::npos);
  EXPECT_NE(body.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"),
            std::string::npos);
}

TEST(ErrorResponse, KeepAliveOmitsConnectionClose) {
  const std::string response = error_response(401, "Unauthorized", "log in", true);
  EXPECT_EQ(response.find("Connection: close"), std::string::npos);
}

TEST(ErrorResponse, ExtraFieldsAreInTheHead) {
  const std::string response = error_response(401, "Unauthorized", "log in", false,
                                              "WWW-Authenticate: Basic realm=\"porthole\"\r\n");
  const std::string head = response.substr(0, response.find("\r\n\r\n") + 4);
  EXPECT_NE(head.find("\r\nWWW-Authenticate: Basic realm=\"porthole\"\r\n"), std::string::npos);
}

}  // namespace
}  // namespace porthole::http
