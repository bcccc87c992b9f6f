#include "http/forwarding.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "http/ascii.h"
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

// What the edge adds for `client` after the client's own fields, when the
// client sent no X-Forwarded-For.
const std::string edge_fields =
    "X-Forwarded-For: 203.0.113.7\r\n"
    "X-Forwarded-Proto: https\r\n"
    "X-Forwarded-Host: a.example\r\n"
    "X-Forwarded-Port: 443\r\n"
    "X-Real-IP: 203.0.113.7\r\n"
    "Forwarded: for=203.0.113.7;proto=https;host=a.example\r\n";

// The same, when the client's X-Forwarded-For got the client appended.
const std::string edge_fields_after_a_list =
    edge_fields.substr(edge_fields.find("X-Forwarded-Proto"));

// The values of every field of `name` in the forwarded head, parsed.
std::vector<std::string> values_of(const std::string& forwarded, std::string_view name) {
  request_parser parser;
  const auto r = parser.parse(forwarded);
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_TRUE(r.head_complete);
  std::vector<std::string> values;
  for (const auto& f : parser.head().fields) {
    if (iequals(f.name, name)) {
      values.push_back(f.value);
    }
  }
  return values;
}

using values = std::vector<std::string>;

TEST(AddForwardedFields, AddsTheEdgesFieldsBeforeTheEmptyLine) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nHost: a.example\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, AppendsTheClientToAnExistingForwardedFor) {
  const std::string head =
      "GET / HTTP/1.1\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2\r\nHost: a.example\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 203.0.113.7\r\n"
            "Host: a.example\r\n" +
                edge_fields_after_a_list + "\r\n");
}

TEST(AddForwardedFields, AppendsToTheLastOfSeveralForwardedForLines) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n";
  forwarded_for only_ip;
  only_ip.client_ip = "203.0.113.7";
  EXPECT_EQ(add_forwarded_fields(head, only_ip),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-For: 10.0.0.2, 203.0.113.7\r\n"
            "X-Real-IP: 203.0.113.7\r\n"
            "Forwarded: for=203.0.113.7\r\n\r\n");
}

TEST(AddForwardedFields, ReplacesClientSuppliedProtoAndHost) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\nHost: a.example\r\n"
      "X-FORWARDED-HOST: evil.example\r\n\r\n";
  const std::string out = add_forwarded_fields(head, client);
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nHost: a.example\r\n" + edge_fields + "\r\n");
  EXPECT_EQ(out.find("evil"), std::string::npos);
}

TEST(AddForwardedFields, DropsTheFoldedLinesOfAReplacedField) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Host: evil\r\n  .example\r\nAccept: */*\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nAccept: */*\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, EmptyProtoAndHostOnlyRemoveClientSuppliedFields) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n\r\n";
  forwarded_for only_ip;
  only_ip.client_ip = "203.0.113.7";
  EXPECT_EQ(add_forwarded_fields(head, only_ip),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7\r\n"
            "X-Real-IP: 203.0.113.7\r\n"
            "Forwarded: for=203.0.113.7\r\n\r\n");
}

TEST(AddForwardedFields, KeepsEveryOtherByteAsItWas) {
  const std::string fields =
      "GET /p?q=1 HTTP/1.1\r\n"
      "Host:a.example\r\n"
      "X-Odd-Spacing:   two  spaces  \r\n"
      "cookie: a=b; c=d\r\n"
      "Connection:  Keep-Alive ,Upgrade\r\n"
      "Upgrade: websocket\r\n"
      "X-Forwardedfor: not-the-same-field\r\n";
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

// The X-Forwarded-Port and Forwarded values

TEST(AddForwardedFields, ForwardedPortIsThePortTheClientNamedInHost) {
  const forwarded_for f{.client_ip = "203.0.113.7", .proto = "http", .host = "a.example:8080"};
  const std::string out = add_forwarded_fields("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", f);
  EXPECT_EQ(values_of(out, "X-Forwarded-Port"), values{"8080"});
  EXPECT_EQ(values_of(out, "Forwarded"),
            values{"for=203.0.113.7;proto=http;host=\"a.example:8080\""});
}

TEST(AddForwardedFields, ForwardedPortIsTheSchemesWhenHostHasNone) {
  const forwarded_for f{.client_ip = "203.0.113.7", .proto = "http", .host = "a.example"};
  EXPECT_EQ(values_of(add_forwarded_fields("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", f),
                      "X-Forwarded-Port"),
            values{"80"});
}

TEST(AddForwardedFields, ForwardedPortOfAnIpv6Host) {
  forwarded_for f{.client_ip = "203.0.113.7", .proto = "https", .host = "[::1]:8443"};
  EXPECT_EQ(values_of(add_forwarded_fields("GET / HTTP/1.1\r\n\r\n", f), "X-Forwarded-Port"),
            values{"8443"});
  f.host = "[::1]";
  EXPECT_EQ(values_of(add_forwarded_fields("GET / HTTP/1.1\r\n\r\n", f), "X-Forwarded-Port"),
            values{"443"});
}

TEST(AddForwardedFields, ForwardedQuotesAnIpv6ClientInBrackets) {
  const forwarded_for f{.client_ip = "2001:db8::7", .proto = "https", .host = "a.example"};
  const std::string out = add_forwarded_fields("GET / HTTP/1.1\r\n\r\n", f);
  EXPECT_EQ(values_of(out, "Forwarded"),
            values{"for=\"[2001:db8::7]\";proto=https;host=a.example"});
  EXPECT_EQ(values_of(out, "X-Forwarded-For"), values{"2001:db8::7"});
}

TEST(AddForwardedFields, ForwardedEscapesQuotesInTheHost) {
  const forwarded_for f{.client_ip = "1.2.3.4", .proto = "https", .host = "a\"b\\c"};
  EXPECT_EQ(values_of(add_forwarded_fields("GET / HTTP/1.1\r\n\r\n", f), "Forwarded"),
            values{"for=1.2.3.4;proto=https;host=\"a\\\"b\\\\c\""});
}

// Fields named in Connection (issue 16, item 4)

TEST(AddForwardedFields, DropsAFieldNamedInConnection) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: X-Secret\r\nX-Secret: 1\r\n"
      "Accept: */*\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, ConnectionCannotStripTheFieldsTheEdgeSets) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: a.example\r\n"
      "Connection: X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host\r\n"
      "X-Forwarded-For: 6.6.6.6\r\n\r\n";
  const std::string out = add_forwarded_fields(head, client);
  // The client made its X-Forwarded-For hop-by-hop: the list starts here.
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nHost: a.example\r\n" + edge_fields + "\r\n");
  EXPECT_EQ(values_of(out, "Connection"), values{});
}

TEST(AddForwardedFields, ConnectionKeepsOnlyItsCloseKeepAliveUpgradeAndTeOptions) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: a.example\r\n"
      "Connection: close, X-Forwarded-Host, x_forwarded_for,TE ,X-Other\r\n"
      "Connection: Keep-Alive, Forwarded\r\nTE: trailers\r\n\r\n";
  const std::string out = add_forwarded_fields(head, client);
  EXPECT_EQ(values_of(out, "Connection"), (values{"close, TE", "Keep-Alive"}));
  EXPECT_EQ(values_of(out, "TE"), values{"trailers"});
  EXPECT_EQ(values_of(out, "X-Forwarded-Host"), values{"a.example"});
}

TEST(AddForwardedFields, ConnectionWithOnlyEndToEndOptionsIsKeptAsSent) {
  const std::string head =
      "GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: websocket\r\nKeep-Alive: timeout=5\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            head.substr(0, head.size() - 2) + edge_fields + "\r\n");
}

TEST(AddForwardedFields, ConnectionOptionsNameFieldsCaseInsensitively) {
  const std::string head =
      "GET / HTTP/1.1\r\nConnection: x-secret\r\nX-SECRET: 1\r\nx-Secret: 2\r\n\r\n";
  EXPECT_EQ(values_of(add_forwarded_fields(head, client), "X-Secret"), values{});
}

TEST(AddForwardedFields, ConnectionCannotDropTheFieldsThatFrameOrRouteTheRequest) {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n"
      "Connection: Host, Content-Length, Transfer-Encoding, Connection\r\n\r\n";
  const std::string out = add_forwarded_fields(head, client);
  EXPECT_EQ(out,
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, ForwardedRequestFramesAsTheEdgeReadIt) {
  // What public_http.cpp decides from the client's head (keep-alive, upgrade)
  // is what the service reads from the forwarded one.
  const std::string heads[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Forwarded-For\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-Proto\r\n\r\n",
      "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, X-Forwarded-Host\r\n\r\n",
      "GET / HTTP/1.0\r\nHost: a\r\nConnection: X-Real-IP\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Forwarded-For\r\n"
      "Upgrade: websocket\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\nConnection: upgrade\r\n"
      "Upgrade: h2c\r\n\r\n",
      // Beast, portholed's parser, reads Proxy-Connection as it reads Connection.
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Proxy-Connection\r\n"
      "Proxy-Connection: close\r\n\r\n",
  };
  for (const std::string& head : heads) {
    request_parser sent;
    ASSERT_TRUE(sent.parse(head).head_complete) << head;
    request_parser forwarded;
    ASSERT_TRUE(forwarded.parse(add_forwarded_fields(head, client)).head_complete) << head;
    EXPECT_EQ(forwarded.head().keep_alive, sent.head().keep_alive) << head;
    EXPECT_EQ(forwarded.head().upgrade, sent.head().upgrade) << head;
  }
}

// Other spellings of the edge's fields (issue 16, item 5)

TEST(AddForwardedFields, DropsUnderscoreSpellingsOfTheFieldsTheEdgeSets) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: a.example\r\nX_Forwarded_Proto: http\r\n"
      "x_forwarded_host: evil.example\r\nX_FORWARDED_PORT: 1\r\nX-Forwarded_For: 6.6.6.6\r\n"
      "X_Real_IP: 6.6.6.6\r\nx-real_ip: 6.6.6.6\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nHost: a.example\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, UnderscoreForwardedForIsDroppedNotAppendedTo) {
  const std::string head =
      "GET / HTTP/1.1\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
  const std::string out = add_forwarded_fields(head, client);
  EXPECT_EQ(values_of(out, "X-Forwarded-For"), values{"10.0.0.1, 203.0.113.7"});
  EXPECT_EQ(out.find("6.6.6.6"), std::string::npos);
}

TEST(AddForwardedFields, ReplacesClientSuppliedForwardedRealIpAndPort) {
  const std::string head =
      "GET / HTTP/1.1\r\nForwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\n"
      "X-Forwarded-Port: 443\r\nforwarded: host=evil.example\r\n\r\n";
  forwarded_for plain = client;
  plain.proto = "http";
  const std::string out = add_forwarded_fields(head, plain);
  EXPECT_EQ(values_of(out, "Forwarded"), values{"for=203.0.113.7;proto=http;host=a.example"});
  EXPECT_EQ(values_of(out, "X-Real-IP"), values{"203.0.113.7"});
  EXPECT_EQ(values_of(out, "X-Forwarded-Port"), values{"80"});
}

TEST(AddForwardedFields, DropsClientSuppliedSchemeFields) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Ssl: on\r\n"
      "Front-End-Https: on\r\nX-Url-Scheme: https\r\nX-Forwarded-Protocol: https\r\n"
      "front_end_https: on\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client), "GET / HTTP/1.1\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, DropsEveryXForwardedFieldTheClientSends) {
  const std::string head =
      "GET / HTTP/1.1\r\nX-Forwarded-Prefix: /admin\r\nX-Forwarded-Server: edge\r\n"
      "X-Forwarded-Client-Cert: Hash=1\r\nX-Forwarded-User: admin\r\n"
      "X_Forwarded_Email: a@example.com\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client), "GET / HTTP/1.1\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, DropsOtherClientAddressFields) {
  const std::string head =
      "GET / HTTP/1.1\r\nTrue-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n"
      "Client-IP: 6.6.6.6\r\nX-Cluster-Client-IP: 6.6.6.6\r\nX-Forwarded: for=6.6.6.6\r\n"
      "Forwarded-For: 6.6.6.6\r\nX_Client_IP: 6.6.6.6\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client), "GET / HTTP/1.1\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, DropsProxyUnderEverySpellingAgainstHttpoxy) {
  const std::string head =
      "GET / HTTP/1.1\r\nProxy: http://evil.example:8080\r\npRoXy: x\r\n"
      "Proxy-Connection: keep-alive\r\n\r\n";
  EXPECT_EQ(add_forwarded_fields(head, client),
            "GET / HTTP/1.1\r\nProxy-Connection: keep-alive\r\n" + edge_fields + "\r\n");
}

TEST(AddForwardedFields, KeepsFieldsThatOnlyResembleTheEdgesFields) {
  const std::string fields =
      "GET / HTTP/1.1\r\nX-Forwardedfor: 1\r\nX-Forwarding-Proto: 2\r\nReal-IP: 3\r\n"
      "CF-Connecting-IP: 4\r\nX-Forwarded-: 5\r\nX-Real-IPs: 6\r\n";
  const std::string out = add_forwarded_fields(fields + "\r\n", client);
  EXPECT_EQ(out, fields + edge_fields + "\r\n");
}

TEST(IsEdgeField, ComparesNamesAsCgiVariables) {
  EXPECT_TRUE(is_edge_field("X-Forwarded-For"));
  EXPECT_TRUE(is_edge_field("x_forwarded_HOST"));
  EXPECT_TRUE(is_edge_field("X-Forwarded_Proto"));
  EXPECT_TRUE(is_edge_field("FORWARDED"));
  EXPECT_TRUE(is_edge_field("x_real_ip"));
  EXPECT_FALSE(is_edge_field("X-Forwarded-"));
  EXPECT_FALSE(is_edge_field("X.Forwarded.For"));
  EXPECT_FALSE(is_edge_field("Host"));
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

TEST(WithoutCloseOption, DropsAConnectionFieldThatSaysOnlyClose) {
  EXPECT_EQ(without_close_option("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                 "Accept: */*\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
}

TEST(WithoutCloseOption, KeepsTheOtherOptions) {
  EXPECT_EQ(
      without_close_option("GET / HTTP/1.1\r\nconnection:  TE , Close\r\nTE: trailers\r\n\r\n"),
      "GET / HTTP/1.1\r\nconnection: TE\r\nTE: trailers\r\n\r\n");
}

TEST(WithoutCloseOption, CoversProxyConnectionToo) {
  EXPECT_EQ(without_close_option("GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n"),
            "GET / HTTP/1.1\r\n\r\n");
}

TEST(WithoutCloseOption, IsEmptyWithoutACloseOption) {
  EXPECT_EQ(without_close_option("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"), "");
  EXPECT_EQ(without_close_option("GET /close HTTP/1.1\r\nX-Connection: close\r\n\r\n"), "");
}

TEST(WithCloseOption, AddsConnectionCloseBeforeTheEmptyLine) {
  EXPECT_EQ(with_close_option("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
}

TEST(WithCloseOption, TakesKeepAliveOutAndKeepsTheOtherOptions) {
  EXPECT_EQ(
      with_close_option("HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\n"
                        "connection: keep-alive, X-Y\r\n\r\n"),
      "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nconnection: X-Y\r\n"
      "Connection: close\r\n\r\n");
}

TEST(WithCloseOption, IsEmptyWhenTheHeadSaysCloseAlready) {
  EXPECT_EQ(with_close_option("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), "");
}

}  // namespace
}  // namespace porthole::http
