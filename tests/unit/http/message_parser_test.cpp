#include "http/message_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <string>
#include <vector>

#include "http/error.h"

namespace porthole::http {
namespace {

namespace beast_http = boost::beast::http;

/// A head or message boundary, as an offset into the whole input.
struct boundary {
  std::size_t offset = 0;
  bool head_complete = false;
  bool message_complete = false;
  std::string head;  ///< "METHOD target" or the status code, when head_complete

  bool operator==(const boundary&) const = default;
};

std::string describe(const request_parser& p) {
  return p.head().method + " " + p.head().target;
}
std::string describe(const response_parser& p) {
  return std::to_string(p.head().status);
}

struct feed_result {
  std::vector<boundary> boundaries;
  std::string forwarded;  ///< the consumed bytes, in order
  std::string left;       ///< bytes never consumed
  boost::system::error_code error;
};

/// Feeds `input` `step` bytes at a time the way a relay does: parse the
/// unconsumed bytes, forward what was consumed, keep the rest, read more.
template <class Parser>
feed_result feed(Parser& parser, std::string_view input, std::size_t step) {
  feed_result result;
  std::string pending;
  std::size_t offset = 0;
  for (std::size_t read = 0; read < input.size();) {
    const std::size_t n = std::min(step, input.size() - read);
    pending.append(input.substr(read, n));
    read += n;
    for (;;) {
      const parse_result r = parser.parse(pending);
      if (r.error) {
        result.error = r.error;
        result.left = pending;
        return result;
      }
      if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
        break;
      }
      result.forwarded.append(pending, 0, r.consumed);
      pending.erase(0, r.consumed);
      offset += r.consumed;
      if (r.head_complete || r.message_complete) {
        result.boundaries.push_back({offset, r.head_complete, r.message_complete,
                                     r.head_complete ? describe(parser) : std::string{}});
      }
    }
  }
  result.left = pending;
  return result;
}

const std::string post_with_body =
    "POST /upload HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello";

const std::string chunked_with_trailers =
    "POST /chunks HTTP/1.1\r\n"
    "Host: a.example\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5;ext=1\r\nhello\r\n"
    "b\r\n world said\r\n"
    "0\r\n"
    "Checksum: abc\r\n"
    "\r\n";

// request_parser

TEST(RequestParser, ParsesRequestLineAndFields) {
  request_parser parser;
  const auto r = parser.parse("GET /a?b=c HTTP/1.1\r\nHost: x.example\r\nAccept: */*\r\n\r\n");
  ASSERT_FALSE(r.error);
  EXPECT_EQ(parser.head().method, "GET");
  EXPECT_EQ(parser.head().target, "/a?b=c");
  EXPECT_EQ(parser.head().version, 11u);
  ASSERT_EQ(parser.head().fields.size(), 2u);
  EXPECT_EQ(parser.head().fields[0].name, "Host");
  EXPECT_EQ(parser.head().fields[0].value, "x.example");
  EXPECT_EQ(parser.head().fields[1].name, "Accept");
  EXPECT_EQ(parser.head().fields[1].value, "*/*");
}

TEST(RequestParser, IncompleteHeadConsumesNothing) {
  request_parser parser;
  const auto r = parser.parse("GET / HTTP/1.1\r\nHost: x.example\r\n");
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_FALSE(r.head_complete);
  EXPECT_FALSE(r.message_complete);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(parser.at_message_start());
}

TEST(RequestParser, EmptyInputAsksForMore) {
  request_parser parser;
  const auto r = parser.parse("");
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_FALSE(r.head_complete);
  EXPECT_FALSE(r.error);
}

TEST(RequestParser, BodylessRequestCompletesWithItsHead) {
  request_parser parser;
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  const auto r = parser.parse(request);
  EXPECT_EQ(r.consumed, request.size());
  EXPECT_TRUE(r.head_complete);
  EXPECT_TRUE(r.message_complete);
  EXPECT_TRUE(parser.at_message_start());
}

TEST(RequestParser, HeadIsConsumedAloneThenContentLengthBody) {
  request_parser parser;
  const std::string input = post_with_body + "GET /next HTTP/1.1\r\n\r\n";
  const std::size_t head_size = post_with_body.size() - 5;

  const auto head = parser.parse(input);
  EXPECT_EQ(head.consumed, head_size);
  EXPECT_TRUE(head.head_complete);
  EXPECT_FALSE(head.message_complete);
  EXPECT_FALSE(parser.at_message_start());

  const auto body = parser.parse(std::string_view{input}.substr(head_size));
  EXPECT_EQ(body.consumed, 5u);
  EXPECT_FALSE(body.head_complete);
  EXPECT_TRUE(body.message_complete);
  EXPECT_TRUE(parser.at_message_start());
}

TEST(RequestParser, PartialBodyIsConsumedAsItArrives) {
  request_parser parser;
  const std::size_t head_size = post_with_body.size() - 5;
  ASSERT_TRUE(parser.parse(std::string_view{post_with_body}.substr(0, head_size)).head_complete);

  const auto part = parser.parse("hel");
  EXPECT_EQ(part.consumed, 3u);
  EXPECT_FALSE(part.message_complete);
  const auto rest = parser.parse("lo");
  EXPECT_EQ(rest.consumed, 2u);
  EXPECT_TRUE(rest.message_complete);
}

TEST(RequestParser, ChunkedBodyIsConsumedAsRawBytesIncludingTrailers) {
  request_parser parser;
  const auto fed = feed(parser, chunked_with_trailers, chunked_with_trailers.size());
  ASSERT_FALSE(fed.error);
  EXPECT_EQ(fed.forwarded, chunked_with_trailers);
  EXPECT_TRUE(fed.left.empty());
  ASSERT_FALSE(fed.boundaries.empty());
  EXPECT_TRUE(fed.boundaries.back().message_complete);
  EXPECT_EQ(fed.boundaries.back().offset, chunked_with_trailers.size());
}

TEST(RequestParser, TrailersAreNotAddedToTheHead) {
  request_parser parser;
  feed(parser, chunked_with_trailers, chunked_with_trailers.size());
  EXPECT_FALSE(parser.head().find("Checksum"));
  EXPECT_EQ(parser.head().fields.size(), 2u);
}

TEST(RequestParser, ChunkedBodyWaitsForAnIncompleteChunkSizeLine) {
  request_parser parser;
  const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(parser.parse(head).head_complete);
  const auto r = parser.parse("5");
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_FALSE(r.error);
  EXPECT_FALSE(r.message_complete);
}

TEST(RequestParser, ShortFirstChunkIsConsumedWithoutWaitingForMore) {
  request_parser parser;
  ASSERT_TRUE(parser.parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").head_complete);
  EXPECT_EQ(parser.parse("1\r\nx").consumed, 4u);
}

TEST(RequestParser, PipelinedRequestsInOneBufferAreFramedOneByOne) {
  request_parser parser;
  const std::string first = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string input = first + post_with_body + chunked_with_trailers;
  const auto fed = feed(parser, input, input.size());
  ASSERT_FALSE(fed.error);
  EXPECT_EQ(fed.forwarded, input);

  const std::size_t post_head = first.size() + post_with_body.size() - 5;
  const std::size_t post_end = first.size() + post_with_body.size();
  const std::size_t chunked_head = post_end + chunked_with_trailers.find("\r\n\r\n") + 4;
  const std::vector<boundary> expected{
      {first.size(), true, true, "GET /one"},
      {post_head, true, false, "POST /upload"},
      {post_end, false, true, ""},
      {chunked_head, true, false, "POST /chunks"},
      {input.size(), false, true, ""},
  };
  EXPECT_EQ(fed.boundaries, expected);
}

TEST(RequestParser, InputFedOneByteAtATimeIsFramedTheSame) {
  const std::string input = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n" + post_with_body +
                            chunked_with_trailers + "DELETE /z HTTP/1.0\r\n\r\n";
  request_parser whole;
  request_parser bytewise;
  const auto at_once = feed(whole, input, input.size());
  const auto one_by_one = feed(bytewise, input, 1);
  ASSERT_FALSE(at_once.error);
  ASSERT_FALSE(one_by_one.error);
  EXPECT_EQ(one_by_one.forwarded, input);
  EXPECT_EQ(one_by_one.boundaries, at_once.boundaries);
}

TEST(RequestParser, EveryReadSizeGivesTheSameFraming) {
  const std::string input = "POST /empty HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
                            chunked_with_trailers + post_with_body +
                            "GET /tab HTTP/1.1\r\nX-Tab:\ta\tb\r\n\r\n";
  request_parser reference;
  const auto at_once = feed(reference, input, input.size());
  ASSERT_FALSE(at_once.error);
  ASSERT_EQ(at_once.boundaries.size(), 7u);
  for (std::size_t step = 1; step <= 40; ++step) {
    request_parser parser;
    const auto fed = feed(parser, input, step);
    ASSERT_FALSE(fed.error) << "step " << step;
    EXPECT_EQ(fed.forwarded, input) << "step " << step;
    EXPECT_EQ(fed.boundaries, at_once.boundaries) << "step " << step;
  }
}

TEST(RequestParser, EmptyChunkedBodyFedOneByteAtATimeCompletes) {
  const std::string input = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  request_parser parser;
  const auto fed = feed(parser, input, 1);
  ASSERT_FALSE(fed.error);
  ASSERT_FALSE(fed.boundaries.empty());
  EXPECT_TRUE(fed.boundaries.back().message_complete);
  EXPECT_EQ(fed.boundaries.back().offset, input.size());
}

TEST(RequestParser, HeadStaysValidUntilTheNextHeadCompletes) {
  request_parser parser;
  ASSERT_TRUE(parser.parse("GET /first HTTP/1.1\r\n\r\n").message_complete);
  EXPECT_EQ(parser.parse("GET /second HTTP/1.1\r\nHost:").consumed, 0u);
  EXPECT_EQ(parser.head().target, "/first");
}

TEST(RequestParser, IncompleteHeadOverTheLimitIsHeaderLimitError) {
  request_parser parser{parser_limits{.header_limit = 64}};
  const std::string input = "GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a');
  const auto r = parser.parse(input);
  EXPECT_EQ(r.error, beast_http::error::header_limit);
}

TEST(RequestParser, CompleteHeadOverTheLimitIsHeaderLimitError) {
  request_parser parser{parser_limits{.header_limit = 64}};
  const std::string input = "GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n";
  EXPECT_EQ(parser.parse(input).error, beast_http::error::header_limit);
}

TEST(RequestParser, HeadExactlyAtTheLimitIsAccepted) {
  const std::string input = "GET / HTTP/1.1\r\nX: y\r\n\r\n";
  request_parser parser{parser_limits{.header_limit = input.size()}};
  const auto r = parser.parse(input);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.message_complete);
}

TEST(RequestParser, HeadOverTheLimitFedByteByByteIsHeaderLimitError) {
  request_parser parser{parser_limits{.header_limit = 64}};
  const std::string input = "GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n";
  EXPECT_EQ(feed(parser, input, 1).error, beast_http::error::header_limit);
}

TEST(RequestParser, BinaryGarbageIsAnErrorBeforeAnyLineEnds) {
  request_parser parser;
  const std::string tls_hello{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11};
  const auto r = parser.parse(tls_hello);
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(RequestParser, MalformedFieldIsAnError) {
  request_parser parser;
  EXPECT_TRUE(parser.parse("GET / HTTP/1.1\r\nno colon here\r\n\r\n").error);
}

TEST(RequestParser, BadChunkSizeIsAnError) {
  request_parser parser;
  ASSERT_TRUE(parser.parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").head_complete);
  EXPECT_TRUE(parser.parse("zz\r\n").error);
}

TEST(RequestParser, ErrorIsReportedAgainOnLaterCalls) {
  request_parser parser;
  const auto first = parser.parse("GET / HTTP/9.9\r\n\r\n");
  ASSERT_TRUE(first.error);
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\n\r\n").error, first.error);
}

TEST(RequestParser, TransferEncodingNotEndingInChunkedIsRefused) {
  request_parser parser;
  const auto r = parser.parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(r.error, error::bad_transfer_encoding);
}

TEST(RequestParser, Http11IsKeepAliveByDefault) {
  request_parser parser;
  parser.parse("GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(parser.head().keep_alive);
}

TEST(RequestParser, Http10IsNotKeepAliveByDefault) {
  request_parser parser;
  parser.parse("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(parser.head().version, 10u);
  EXPECT_FALSE(parser.head().keep_alive);
}

TEST(RequestParser, Http10WithConnectionKeepAliveIsKeepAlive) {
  request_parser parser;
  parser.parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(parser.head().keep_alive);
}

TEST(RequestParser, ConnectionCloseIsNotKeepAlive) {
  request_parser parser;
  parser.parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(parser.head().keep_alive);
}

TEST(RequestParser, ConnectionUpgradeWithUpgradeFieldSetsUpgrade) {
  request_parser parser;
  parser.parse("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(parser.head().upgrade);
}

TEST(RequestParser, UpgradeFieldWithoutConnectionUpgradeDoesNotSetUpgrade) {
  request_parser parser;
  parser.parse("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_FALSE(parser.head().upgrade);
}

TEST(RequestParser, FindIgnoresCaseAndReturnsTheFirstMatch) {
  request_parser parser;
  parser.parse("GET / HTTP/1.1\r\nx-thing: one\r\nX-THING: two\r\n\r\n");
  EXPECT_EQ(parser.head().find("X-Thing"), "one");
  EXPECT_FALSE(parser.head().find("X-Other"));
}

TEST(RequestParser, MovedParserKeepsItsState) {
  request_parser parser;
  const std::size_t head_size = post_with_body.size() - 5;
  ASSERT_TRUE(parser.parse(std::string_view{post_with_body}.substr(0, head_size)).head_complete);
  request_parser moved = std::move(parser);
  EXPECT_EQ(moved.head().target, "/upload");
  EXPECT_TRUE(moved.parse("hello").message_complete);
}

// response_parser

TEST(ResponseParser, ContentLengthBodyIsFramed) {
  response_parser parser;
  parser.expect("GET");
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  const auto fed = feed(parser, input, input.size());
  ASSERT_FALSE(fed.error);
  const std::vector<boundary> expected{{input.size() - 3, true, false, "200"},
                                       {input.size(), false, true, ""}};
  EXPECT_EQ(fed.boundaries, expected);
  EXPECT_EQ(parser.head().reason, "OK");
  EXPECT_EQ(parser.pending(), 0u);
}

TEST(ResponseParser, ResponseToHeadHasNoBodyDespiteContentLength) {
  response_parser parser;
  parser.expect("HEAD");
  parser.expect("GET");
  const std::string head_response = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  const std::string get_response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  const auto r = parser.parse(head_response + get_response);
  EXPECT_EQ(r.consumed, head_response.size());
  EXPECT_TRUE(r.head_complete);
  EXPECT_TRUE(r.message_complete);
  const auto fed = feed(parser, get_response, get_response.size());
  ASSERT_FALSE(fed.error);
  EXPECT_EQ(fed.forwarded, get_response);
  EXPECT_TRUE(fed.boundaries.back().message_complete);
}

TEST(ResponseParser, NoContentHasNoBody) {
  response_parser parser;
  parser.expect("DELETE");
  const std::string input = "HTTP/1.1 204 No Content\r\n\r\n";
  const auto r = parser.parse(input);
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_TRUE(r.message_complete);
  EXPECT_FALSE(parser.body_until_close());
}

TEST(ResponseParser, NotModifiedHasNoBodyDespiteContentLength) {
  response_parser parser;
  parser.expect("GET");
  const std::string input = "HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n";
  const auto r = parser.parse(input);
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_TRUE(r.message_complete);
}

TEST(ResponseParser, ContinueIsInterimAndLeavesTheRequestOwed) {
  response_parser parser;
  parser.expect("POST");
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string final_response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const auto fed = feed(parser, interim + final_response, 1);
  ASSERT_FALSE(fed.error);
  const std::vector<boundary> expected{
      {interim.size(), true, true, "100"},
      {interim.size() + final_response.size() - 2, true, false, "200"},
      {interim.size() + final_response.size(), false, true, ""},
  };
  EXPECT_EQ(fed.boundaries, expected);
  EXPECT_EQ(parser.pending(), 0u);
}

TEST(ResponseParser, InterimResponseDoesNotDequeueTheRequest) {
  response_parser parser;
  parser.expect("POST");
  ASSERT_TRUE(parser.parse("HTTP/1.1 100 Continue\r\n\r\n").message_complete);
  EXPECT_EQ(parser.pending(), 1u);
}

TEST(ResponseParser, SwitchingProtocolsEndsHttp) {
  response_parser parser;
  parser.expect("GET");
  const std::string input =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const auto r = parser.parse(input + "\x81\x05hello");
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_TRUE(r.message_complete);
  EXPECT_TRUE(parser.switched_protocols());
  EXPECT_EQ(parser.pending(), 0u);
}

TEST(ResponseParser, BytesAfterSwitchingProtocolsAreConsumedUnparsed) {
  response_parser parser;
  parser.expect("GET");
  parser.parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n");
  const auto r = parser.parse("\x81\x05hello");
  EXPECT_EQ(r.consumed, 7u);
  EXPECT_FALSE(r.error);
  EXPECT_FALSE(r.message_complete);
}

TEST(ResponseParser, SuccessfulConnectEndsHttp) {
  response_parser parser;
  parser.expect("CONNECT");
  const std::string input = "HTTP/1.1 200 Connection Established\r\n\r\n";
  const auto r = parser.parse(input + "tunnelled bytes");
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_TRUE(r.message_complete);
  EXPECT_TRUE(parser.switched_protocols());
  EXPECT_FALSE(parser.body_until_close());
}

TEST(ResponseParser, RefusedConnectHasABodyAndStaysHttp) {
  response_parser parser;
  parser.expect("CONNECT");
  const std::string input =
      "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope";
  const auto fed = feed(parser, input, input.size());
  ASSERT_FALSE(fed.error);
  EXPECT_EQ(fed.boundaries.back().offset, input.size());
  EXPECT_TRUE(fed.boundaries.back().message_complete);
  EXPECT_FALSE(parser.switched_protocols());
}

TEST(ResponseParser, ResponseWithoutLengthRunsUntilClose) {
  response_parser parser;
  parser.expect("GET");
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
  const auto r = parser.parse(head);
  EXPECT_EQ(r.consumed, head.size());
  EXPECT_TRUE(r.head_complete);
  EXPECT_FALSE(r.message_complete);
  EXPECT_TRUE(parser.body_until_close());
  EXPECT_FALSE(parser.head().keep_alive);

  const std::string body = "HTTP/1.1 200 OK\r\n\r\nlooks like a response but is body";
  const auto b = parser.parse(body);
  EXPECT_EQ(b.consumed, body.size());
  EXPECT_FALSE(b.message_complete);
  EXPECT_FALSE(b.error);
}

TEST(ResponseParser, ChunkedResponseFedOneByteAtATimeIsFramedTheSame) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
      "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx";
  response_parser whole;
  response_parser bytewise;
  for (auto* parser : {&whole, &bytewise}) {
    parser->expect("GET");
    parser->expect("GET");
  }
  const auto at_once = feed(whole, input, input.size());
  const auto one_by_one = feed(bytewise, input, 1);
  ASSERT_FALSE(at_once.error);
  ASSERT_FALSE(one_by_one.error);
  EXPECT_EQ(at_once.forwarded, input);
  EXPECT_EQ(one_by_one.forwarded, input);
  EXPECT_EQ(one_by_one.boundaries, at_once.boundaries);
  EXPECT_EQ(at_once.boundaries.size(), 4u);
}

TEST(ResponseParser, EveryReadSizeGivesTheSameFraming) {
  const std::string input =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\nC: d\r\n\r\n"
      "HTTP/1.0 200 OK\r\n\r\nbody until the connection closes";
  const auto expect_all = [](response_parser& parser) {
    for (const char* method : {"POST", "HEAD", "GET", "GET", "GET"}) {
      parser.expect(method);
    }
  };
  response_parser reference;
  expect_all(reference);
  const auto at_once = feed(reference, input, input.size());
  ASSERT_FALSE(at_once.error);
  ASSERT_EQ(at_once.boundaries.size(), 8u);
  EXPECT_EQ(at_once.forwarded, input);
  for (std::size_t step = 1; step <= 40; ++step) {
    response_parser parser;
    expect_all(parser);
    const auto fed = feed(parser, input, step);
    ASSERT_FALSE(fed.error) << "step " << step;
    EXPECT_EQ(fed.forwarded, input) << "step " << step;
    EXPECT_EQ(fed.boundaries, at_once.boundaries) << "step " << step;
    EXPECT_TRUE(parser.body_until_close()) << "step " << step;
  }
}

TEST(ResponseParser, PendingCountsRequestsNotYetAnswered) {
  response_parser parser;
  EXPECT_EQ(parser.pending(), 0u);
  parser.expect("GET");
  parser.expect("GET");
  EXPECT_EQ(parser.pending(), 2u);
  parser.parse("HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(parser.pending(), 1u);
}

TEST(ResponseParser, GarbageIsAnError) {
  response_parser parser;
  parser.expect("GET");
  EXPECT_TRUE(parser.parse("SSH-2.0-OpenSSH").error);
}

TEST(ResponseParser, HeadOverTheLimitIsHeaderLimitError) {
  response_parser parser{parser_limits{.header_limit = 64}};
  parser.expect("GET");
  const std::string input = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(100, 'a');
  EXPECT_EQ(parser.parse(input).error, beast_http::error::header_limit);
}

TEST(ResponseParser, Http10ResponseWithContentLengthIsNotKeepAlive) {
  response_parser parser;
  parser.expect("GET");
  parser.parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(parser.head().version, 10u);
  EXPECT_FALSE(parser.head().keep_alive);
  EXPECT_FALSE(parser.body_until_close());
}

TEST(ResponseParser, FindIgnoresCase) {
  response_parser parser;
  parser.expect("GET");
  parser.parse("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  EXPECT_EQ(parser.head().find("Content-Length"), "0");
}

// Request smuggling shapes: each is refused as a whole, so not one byte of
// the message that carries it is consumed (forwarded).

/// Feeds `first` (a valid request) and then `second` on one connection, as
/// a keep-alive client would; returns what was forwarded and the error.
feed_result keep_alive_then(std::string_view second) {
  request_parser parser;
  const std::string first = "GET /first HTTP/1.1\r\nHost: a.example\r\n\r\n";
  return feed(parser, first + std::string(second), 7);
}

TEST(RequestParser, SmugglingShapesOnTheSecondRequestForwardOnlyTheFirst) {
  const std::string first = "GET /first HTTP/1.1\r\nHost: a.example\r\n\r\n";
  struct shape {
    std::string request;
    boost::system::error_code expected;
  };
  const std::vector<shape> cases = {
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n",
       error::content_length_and_chunked},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
       error::duplicate_content_length},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
       error::bad_transfer_encoding},
      {"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
       error::obs_fold},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
       error::space_before_colon},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", error::bad_content_length},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", error::duplicate_host},
      {"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", error::host_mismatch},
  };
  for (const shape& c : cases) {
    const feed_result r = keep_alive_then(c.request);
    EXPECT_EQ(r.error, c.expected) << c.request;
    EXPECT_EQ(r.forwarded, first) << c.request;
  }
}

TEST(RequestParser, BareLfIsRefusedAsSoonAsItArrives) {
  request_parser parser;
  // No CRLF CRLF will ever come: the LF alone must not make the relay wait.
  const auto r = parser.parse("GET / HTTP/1.1\nHost: a\n");
  EXPECT_EQ(r.error, error::bare_line_ending);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(RequestParser, BareLfHeadFedByteByByteIsRefused) {
  request_parser parser;
  const feed_result r = feed(parser, "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 1);
  EXPECT_EQ(r.error, error::bare_line_ending);
  EXPECT_EQ(r.forwarded, "");
}

TEST(RequestParser, LfInABodyIsNotALineEnding) {
  request_parser parser;
  const std::string request = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\nb";
  const feed_result r = feed(parser, request, request.size());
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.forwarded, request);
}

TEST(RequestParser, TooManyFieldsIsRefused) {
  request_parser parser(parser_limits{.header_limit = 32 * 1024, .max_fields = 3});
  const auto ok = parser.parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n");
  EXPECT_FALSE(ok.error);
  const auto r = parser.parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
  EXPECT_EQ(r.error, error::too_many_fields);
  EXPECT_EQ(r.consumed, 0u);
}

// Chunked request bodies: a fault ends the framing before the bytes that hold it.
feed_result chunked_body(std::string_view body) {
  request_parser parser;
  const std::string request =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(body);
  return feed(parser, request, request.size());
}

TEST(RequestParser, InvalidChunkSizesAreErrors) {
  for (const char* body :
       {"zz\r\nhello\r\n0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n", "5\nhello\r\n0\r\n\r\n"}) {
    const feed_result r = chunked_body(body);
    EXPECT_TRUE(r.error) << body;
    EXPECT_FALSE(r.forwarded.ends_with("hello")) << body;
  }
}

TEST(RequestParser, ChunkSizeOverflowIsAnError) {
  const feed_result r = chunked_body("10000000000000000\r\nx\r\n0\r\n\r\n");
  EXPECT_TRUE(r.error);
  const feed_result big = chunked_body("fffffffffffffffffff\r\nx\r\n0\r\n\r\n");
  EXPECT_TRUE(big.error);
}

TEST(RequestParser, MissingCrlfAfterChunkDataIsAnError) {
  const feed_result r = chunked_body("5\r\nhelloXX0\r\n\r\n");
  EXPECT_TRUE(r.error);
  const feed_result lf = chunked_body("5\r\nhello\n0\r\n\r\n");
  EXPECT_TRUE(lf.error);
}

TEST(RequestParser, TrailerWithAControlByteIsAnError) {
  const feed_result r = chunked_body(
      "0\r\nX: a\x01"
      "b\r\n\r\n");
  EXPECT_TRUE(r.error);
  const feed_result lf = chunked_body("0\r\nX: a\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(lf.error);
}

// Responses from the local service: the same shapes never desync the framing.

TEST(ResponseParser, BareLfHeadIsAnErrorAtOnce) {
  response_parser p;
  p.expect("GET");
  const auto r = p.parse("HTTP/1.1 200 OK\nContent-Length: 2\n\nok");
  EXPECT_EQ(r.error, error::bare_line_ending);
}

TEST(ResponseParser, ContentLengthWithTransferEncodingIsAnError) {
  response_parser p;
  p.expect("GET");
  const auto r = p.parse(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_TRUE(r.error);
}

TEST(ResponseParser, ConflictingContentLengthsAreAnError) {
  response_parser p;
  p.expect("GET");
  const auto r = p.parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  EXPECT_TRUE(r.error);
}

TEST(ResponseParser, TransferEncodingNotEndingInChunkedRunsUntilClose) {
  response_parser p;
  p.expect("GET");
  const auto r =
      p.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n");
  ASSERT_FALSE(r.error);
  EXPECT_TRUE(p.body_until_close());
}

TEST(ResponseParser, InvalidChunkSizeIsAnError) {
  response_parser p;
  p.expect("GET");
  const std::string in =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
  const feed_result r = feed(p, in, in.size());
  EXPECT_TRUE(r.error);
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

TEST(RequestParser, ReleaseBetweenMessagesEmptiesTheHeadAndParsingGoesOn) {
  request_parser p;
  const std::string first =
      "GET /a HTTP/1.1\r\nHost: x\r\nX-Long-Field-Name: a long enough value to allocate\r\n\r\n";
  auto r = p.parse(first);
  ASSERT_TRUE(r.head_complete && r.message_complete);
  EXPECT_EQ(p.head().target, "/a");
  p.release();
  EXPECT_TRUE(p.head().fields.empty());
  r = p.parse("GET /b HTTP/1.1\r\nHost: y\r\n\r\n");
  ASSERT_TRUE(r.head_complete && r.message_complete);
  EXPECT_EQ(p.head().target, "/b");
  EXPECT_EQ(p.head().find("host"), "y");
}

TEST(ResponseParser, ReleaseBetweenResponsesEmptiesTheHeadAndParsingGoesOn) {
  response_parser p;
  p.expect("GET");
  std::string_view in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  auto r = p.parse(in);
  ASSERT_TRUE(r.head_complete);
  r = p.parse(in.substr(r.consumed));
  ASSERT_TRUE(r.message_complete);
  p.release();
  EXPECT_EQ(p.head().status, 0u);
  p.expect("GET");
  r = p.parse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(r.message_complete);
  EXPECT_EQ(p.head().status, 404u);
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

struct collected final : body_sink {
  std::string bytes;
  std::vector<std::pair<std::string, std::string>> trailers;
  void body(std::string_view b) override { bytes.append(b); }
  void trailer(std::string_view name, std::string_view value) override {
    trailers.emplace_back(name, value);
  }
};

TEST(BodySink, GetsAChunkedBodyDecodedAndItsTrailersWhateverTheReads) {
  for (std::size_t step : {1u, 3u, 7u, 1000u}) {
    request_parser p;
    collected sink;
    p.decode_into(&sink);
    const feed_result r = feed(p, chunked_with_trailers, step);
    ASSERT_FALSE(r.error) << step;
    EXPECT_EQ(r.forwarded, chunked_with_trailers) << step;  // framing is unchanged
    EXPECT_EQ(sink.bytes, "hello world said") << step;
    ASSERT_EQ(sink.trailers.size(), 1u) << step;
    EXPECT_EQ(sink.trailers[0].first, "Checksum");
    EXPECT_EQ(sink.trailers[0].second, "abc");
  }
}

TEST(BodySink, GetsAResponseBodyOfKnownLengthButNotTheNextHead) {
  response_parser p;
  collected sink;
  p.decode_into(&sink);
  p.expect("GET");
  p.expect("HEAD");
  const std::string two =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  const feed_result r = feed(p, two, 4);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(sink.bytes, "hello");  // the HEAD response has no body
  EXPECT_TRUE(sink.trailers.empty());
}

TEST(BodySink, GetsABodyThatRunsUntilClose) {
  response_parser p;
  collected sink;
  p.decode_into(&sink);
  p.expect("GET");
  const feed_result r = feed(p, "HTTP/1.1 200 OK\r\n\r\nall of it", 5);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(sink.bytes, "all of it");
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

struct gathered final : body_sink {
  std::string bytes;
  void body(std::string_view b) override { bytes.append(b); }
  void trailer(std::string_view, std::string_view) override {}
};

TEST(BodySink, SetOnceTheHeadIsParsedGetsThatMessagesBody) {
  request_parser p;
  const parse_result head = p.parse(post_with_body);
  ASSERT_TRUE(head.head_complete);
  gathered sink;
  p.decode_into(&sink);
  const parse_result body = p.parse(std::string_view(post_with_body).substr(head.consumed));
  EXPECT_TRUE(body.message_complete);
  EXPECT_EQ(sink.bytes, "hello");
}

}  // namespace
}  // namespace porthole::http
