#include "inspect/http_capture.h"

#include <brotli/encode.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::inspect {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

/// Compresses with zlib; `window_bits` picks gzip (31), zlib (15) or raw (-15).
std::string zlib_compress(std::string_view in, int window_bits) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2");
  }
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int ret = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (ret != Z_STREAM_END) {
    throw std::runtime_error("deflate");
  }
  return out;
}

std::string brotli_compress(std::string_view in) {
  std::string out(BrotliEncoderMaxCompressedSize(in.size()), '\0');
  std::size_t size = out.size();
  if (!BrotliEncoderCompress(BROTLI_DEFAULT_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC,
                             in.size(), reinterpret_cast<const std::uint8_t*>(in.data()), &size,
                             reinterpret_cast<std::uint8_t*>(out.data()))) {
    throw std::runtime_error("brotli");
  }
  out.resize(size);
  return out;
}

std::string text(std::size_t n) {
  std::string s;
  while (s.size() < n) {
    s += "the quick brown fox jumps over the lazy dog ";
  }
  s.resize(n);
  return s;
}

std::string response_with(std::string_view headers, std::string_view body) {
  return "HTTP/1.1 200 OK\r\n" + std::string{headers} +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string{body};
}

class HttpCapture : public ::testing::Test {
 protected:
  http_capture make(std::size_t body_limit = 1024 * 1024) {
    http_capture_options options;
    options.tunnel_name = "web";
    options.public_url = "https://app.example.com";
    options.remote_addr = "203.0.113.7:51234";
    options.body_limit = body_limit;
    options.clock = [this] { return now; };
    return http_capture{std::move(options), [this](exchange e) { captured.push_back(e); }};
  }

  /// Feeds `bytes` `step` at a time, the way a relay hands over its reads.
  static void requests(http_capture& c, std::string_view bytes, std::size_t step = 1) {
    for (std::size_t i = 0; i < bytes.size(); i += step) {
      c.on_request_bytes(bytes.substr(i, step));
    }
  }
  static void responses(http_capture& c, std::string_view bytes, std::size_t step = 1) {
    for (std::size_t i = 0; i < bytes.size(); i += step) {
      c.on_response_bytes(bytes.substr(i, step));
    }
  }

  sys_clock::time_point now = sys_clock::time_point{1'700'000'000s};
  std::vector<exchange> captured;
};

TEST_F(HttpCapture, ContentLengthRequestAndResponseAreCaptured) {
  auto c = make();
  requests(c,
           "POST /upload?x=1 HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_TRUE(captured.empty());
  responses(c, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok");
  ASSERT_EQ(captured.size(), 1u);
  const exchange& e = captured[0];
  EXPECT_EQ(e.tunnel_name, "web");
  EXPECT_EQ(e.public_url, "https://app.example.com");
  EXPECT_EQ(e.remote_addr, "203.0.113.7:51234");
  EXPECT_EQ(e.request.method, "POST");
  EXPECT_EQ(e.request.target, "/upload?x=1");
  EXPECT_EQ(e.request.version, "HTTP/1.1");
  const header_list request_headers{{"Host", "app.example.com"}, {"Content-Length", "5"}};
  EXPECT_EQ(e.request.headers, request_headers);
  EXPECT_EQ(e.request.body, (captured_body{"hello", 5, false}));
  ASSERT_TRUE(e.response);
  EXPECT_EQ(e.response->status, 201);
  EXPECT_EQ(e.response->reason, "Created");
  EXPECT_EQ(e.response->version, "HTTP/1.1");
  const header_list response_headers{{"Content-Length", "2"}, {"X-A", "b"}};
  EXPECT_EQ(e.response->headers, response_headers);
  EXPECT_EQ(e.response->body, (captured_body{"ok", 2, false}));
  EXPECT_TRUE(e.error.empty());
  EXPECT_FALSE(e.websocket);
}

TEST_F(HttpCapture, FramedInputGivesTheSameExchangeAsTheBytes) {
  const std::string request =
      "POST /upload?x=1 HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 5\r\n\r\nhello";
  const std::string response = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok";
  auto bytes = make();
  requests(bytes, request, 7);
  responses(bytes, response, 7);
  ASSERT_EQ(captured.size(), 1u);
  const exchange from_bytes = captured[0];
  captured.clear();

  // The same exchange as a relay that frames the messages hands it over.
  http::request_parser req(http::forwarded_limits);
  ASSERT_TRUE(req.parse(request).head_complete);
  http::response_parser resp;
  resp.expect("POST");
  ASSERT_TRUE(resp.parse(response).head_complete);
  auto framed = make();
  framed.framed_request_head(req.head());
  framed.framed_request_body("hel");
  framed.framed_request_body("lo");
  framed.framed_request_end();
  EXPECT_TRUE(captured.empty());
  framed.framed_response_head(resp.head());
  framed.framed_response_body("ok");
  framed.framed_response_end();
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0], from_bytes);
}

TEST_F(HttpCapture, FramedInterimResponsesAreNotKept) {
  http::request_parser req(http::forwarded_limits);
  ASSERT_TRUE(req.parse("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                        "Content-Length: 1\r\n\r\n")
                  .head_complete);
  http::response_parser resp;
  resp.expect("PUT");
  ASSERT_TRUE(resp.parse("HTTP/1.1 100 Continue\r\n\r\n").head_complete);
  const http::response_head interim = resp.head();
  ASSERT_TRUE(resp.parse("HTTP/1.1 204 No Content\r\n\r\n").head_complete);
  auto c = make();
  c.framed_request_head(req.head());
  c.framed_response_head(interim);
  c.framed_response_end();
  c.framed_request_body("x");
  c.framed_request_end();
  c.framed_response_head(resp.head());
  c.framed_response_end();
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].response->status, 204);
  EXPECT_EQ(captured[0].request.body, (captured_body{"x", 1, false}));
}

TEST_F(HttpCapture, FramedCaptureThatLostTrackKeepsTheWholeRequestsWithWhy) {
  http::request_parser req(http::forwarded_limits);
  ASSERT_TRUE(req.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").head_complete);
  auto c = make();
  c.framed_request_head(req.head());
  c.framed_request_end();
  c.abandon("response is not valid HTTP: bad");
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].error, "capture stopped: response is not valid HTTP: bad");
  c.on_close();
  EXPECT_EQ(captured.size(), 1u);
}

TEST_F(HttpCapture, RequestAtThePublicFieldLimitIsCapturedWithTheFieldsTheServerAdded) {
  // portholed lets 100 fields through and adds X-Forwarded-For, -Proto,
  // -Host and -Port, X-Real-IP and Forwarded: the capture must take what the
  // server forwards.
  std::string head = "GET / HTTP/1.1\r\nHost: app.example.com\r\n";
  for (int i = 0; i < 99; ++i) {
    head += "X-F" + std::to_string(i) + ": v\r\n";
  }
  head +=
      "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: app.example.com\r\nX-Forwarded-Port: 443\r\n"
      "X-Real-IP: 203.0.113.7\r\n"
      "Forwarded: for=203.0.113.7;proto=https;host=app.example.com\r\n\r\n";
  auto c = make();
  requests(c, head, 64);
  responses(c, response_with("", "ok"), 64);
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_TRUE(captured[0].error.empty()) << captured[0].error;
  EXPECT_EQ(captured[0].request.headers.size(), 106u);
  ASSERT_TRUE(captured[0].response);
  EXPECT_EQ(captured[0].response->status, 200);
}

TEST_F(HttpCapture, ChunkedResponseKeepsRawBytesAndDecodesWithoutFraming) {
  auto c = make();
  requests(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const std::string raw = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
  responses(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + raw);
  ASSERT_EQ(captured.size(), 1u);
  const captured_response& r = *captured[0].response;
  EXPECT_EQ(r.body.bytes, raw);
  EXPECT_EQ(r.body.size, raw.size());
  const body_decoding d = decoded_body(r.headers, r.body);
  EXPECT_TRUE(d.complete()) << d.error;
  EXPECT_EQ(d.bytes, "hello, world");
}

TEST_F(HttpCapture, GzipResponseIsDecoded) {
  auto c = make();
  const std::string plain = text(5000);
  const std::string gz = zlib_compress(plain, MAX_WBITS + 16);
  requests(c, "GET / HTTP/1.1\r\n\r\n");
  responses(c, response_with("Content-Encoding: gzip\r\n", gz), 7);
  ASSERT_EQ(captured.size(), 1u);
  const captured_response& r = *captured[0].response;
  EXPECT_EQ(r.body.bytes, gz);
  const body_decoding d = decoded_body(r.headers, r.body);
  EXPECT_TRUE(d.complete()) << d.error;
  EXPECT_EQ(d.bytes, plain);
}

TEST_F(HttpCapture, ChunkedGzipResponseIsDechunkedThenDecompressed) {
  auto c = make();
  const std::string plain = text(300);
  const std::string gz = zlib_compress(plain, MAX_WBITS + 16);
  char size_line[16];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", gz.size());
  requests(c, "GET / HTTP/1.1\r\n\r\n");
  responses(c, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   std::string{size_line} + gz + "\r\n0\r\n\r\n");
  ASSERT_EQ(captured.size(), 1u);
  const captured_response& r = *captured[0].response;
  const body_decoding d = decoded_body(r.headers, r.body);
  EXPECT_TRUE(d.complete()) << d.error;
  EXPECT_EQ(d.bytes, plain);
}

TEST_F(HttpCapture, DeflateResponseIsDecoded) {
  const std::string plain = text(2000);
  for (const int window_bits : {MAX_WBITS, -MAX_WBITS}) {  // zlib-wrapped, and raw as some send
    const captured_body body{zlib_compress(plain, window_bits), 0, false};
    const body_decoding d = decoded_body({{"Content-Encoding", "deflate"}}, body);
    EXPECT_TRUE(d.complete()) << d.error;
    EXPECT_EQ(d.bytes, plain) << window_bits;
  }
}

TEST_F(HttpCapture, BrotliResponseIsDecoded) {
  const std::string plain = text(3000);
  const captured_body body{brotli_compress(plain), 0, false};
  const body_decoding d = decoded_body({{"content-encoding", "br"}}, body);
  EXPECT_TRUE(d.complete()) << d.error;
  EXPECT_EQ(d.bytes, plain);
}

TEST_F(HttpCapture, UnknownCodingIsReportedAndTheBytesLeftAsTheyAre) {
  const body_decoding d = decoded_body({{"Content-Encoding", "zstd"}}, {"abc", 3, false});
  EXPECT_EQ(d.bytes, "abc");
  EXPECT_EQ(d.error, "unsupported coding: zstd");
}

TEST_F(HttpCapture, CorruptGzipIsReportedNotThrown) {
  const body_decoding d = decoded_body({{"Content-Encoding", "gzip"}}, {"not gzip", 8, false});
  EXPECT_FALSE(d.complete());
}

TEST_F(HttpCapture, BodyOverTheLimitIsCutWithItsTrueSize) {
  auto c = make(10);
  const std::string body = text(25);
  requests(c, "POST / HTTP/1.1\r\nContent-Length: 25\r\n\r\n" + body, 4);
  responses(c, response_with("", body), 3);
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].request.body, (captured_body{body.substr(0, 10), 25, true}));
  EXPECT_EQ(captured[0].response->body, (captured_body{body.substr(0, 10), 25, true}));
}

TEST_F(HttpCapture, TruncatedGzipDecodesItsStartAndSaysItWasCut) {
  const std::string plain = text(20000);
  const std::string gz = zlib_compress(plain, MAX_WBITS + 16);
  const captured_body cut{gz.substr(0, gz.size() / 2), gz.size(), true};
  const body_decoding d = decoded_body({{"Content-Encoding", "gzip"}}, cut);
  EXPECT_FALSE(d.complete());
  EXPECT_NE(d.error.find("cut at the capture limit"), std::string::npos) << d.error;
  ASSERT_FALSE(d.bytes.empty());
  EXPECT_EQ(d.bytes, plain.substr(0, d.bytes.size()));
}

TEST_F(HttpCapture, DecompressionIsBoundedByTheOutputLimit) {
  const std::string gz = zlib_compress(std::string(100000, 'a'), MAX_WBITS + 16);
  const body_decoding d =
      decoded_body({{"Content-Encoding", "gzip"}}, {gz, gz.size(), false}, 1000);
  EXPECT_EQ(d.bytes.size(), 1000u);
  EXPECT_FALSE(d.complete());
}

TEST_F(HttpCapture, PipelinedExchangesAreMatchedInOrder) {
  auto c = make();
  requests(c,
           "GET /one HTTP/1.1\r\n\r\n"
           "POST /two HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
           5);
  responses(
      c, response_with("", "first") + "HTTP/1.1 404 Not Found\r\nContent-Length: 6\r\n\r\nsecond",
      5);
  ASSERT_EQ(captured.size(), 2u);
  EXPECT_EQ(captured[0].request.target, "/one");
  EXPECT_EQ(captured[0].response->status, 200);
  EXPECT_EQ(captured[0].response->body.bytes, "first");
  EXPECT_EQ(captured[1].request.target, "/two");
  EXPECT_EQ(captured[1].request.body.bytes, "abc");
  EXPECT_EQ(captured[1].response->status, 404);
  EXPECT_EQ(captured[1].response->body.bytes, "second");
}

TEST_F(HttpCapture, ExchangesAreTheSameHoweverTheReadsSplitThem) {
  const std::string request_stream =
      "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
  const std::string response_stream =
      response_with("X-A: 1\r\n", "first body") +
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  std::vector<exchange> whole;
  for (const std::size_t step : {request_stream.size() + response_stream.size(), std::size_t{1},
                                 std::size_t{2}, std::size_t{7}, std::size_t{30}}) {
    captured.clear();
    auto c = make();
    // Each read comes in a buffer of its own, reused afterwards as the relay's are.
    std::string buffer;
    for (std::size_t i = 0; i < request_stream.size(); i += step) {
      buffer = request_stream.substr(i, step);
      c.on_request_bytes(buffer);
      buffer.assign(buffer.size(), '#');
    }
    for (std::size_t i = 0; i < response_stream.size(); i += step) {
      buffer = response_stream.substr(i, step);
      c.on_response_bytes(buffer);
      buffer.assign(buffer.size(), '#');
    }
    ASSERT_EQ(captured.size(), 2u) << "reads of " << step;
    if (whole.empty()) {
      whole = captured;
      EXPECT_EQ(whole[0].response->body.bytes, "first body");
      EXPECT_EQ(whole[1].request.body.bytes, "hello world");
      EXPECT_EQ(whole[1].response->body.bytes, "3\r\nabc\r\n0\r\n\r\n");
    } else {
      EXPECT_EQ(captured, whole) << "reads of " << step;
    }
  }
}

TEST_F(HttpCapture, ResponseToHeadHasNoBody) {
  auto c = make();
  requests(c, "HEAD / HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
  responses(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + response_with("", "hi"));
  ASSERT_EQ(captured.size(), 2u);
  EXPECT_EQ(captured[0].response->body, captured_body{});
  EXPECT_EQ(captured[1].response->body.bytes, "hi");
}

TEST_F(HttpCapture, ContinueThenOkRecordsTheFinalResponse) {
  auto c = make();
  requests(c, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  responses(c, "HTTP/1.1 100 Continue\r\n\r\n");
  requests(c, "data");
  responses(c, response_with("", "done"));
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].request.body.bytes, "data");
  EXPECT_EQ(captured[0].response->status, 200);
  EXPECT_EQ(captured[0].response->body.bytes, "done");
}

TEST_F(HttpCapture, UpgradeIsRecordedOnceWithBytesAndMessagesEachWay) {
  auto c = make();
  requests(c,
           "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  // A masked text "hi" frame, sent before the 101 arrived.
  const std::string in_frame{"\x81\x82\x01\x02\x03\x04\x69\x6b", 8};
  requests(c, in_frame);
  // The 101 and a first server frame ("hello") in one read, then a fragmented
  // message (2 frames) and a ping, one byte at a time.
  const std::string out_frame{"\x81\x05hello", 7};
  responses(
      c,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
          out_frame,
      1000);
  const std::string fragmented{
      "\x01\x01"
      "a"
      "\x80\x01"
      "b"
      "\x89\x00",
      8};
  responses(c, fragmented);
  requests(c, in_frame, 3);
  EXPECT_TRUE(captured.empty());
  c.on_close();
  ASSERT_EQ(captured.size(), 1u);
  const exchange& e = captured[0];
  EXPECT_EQ(e.response->status, 101);
  ASSERT_TRUE(e.websocket);
  EXPECT_EQ(e.websocket->bytes_in, 2 * in_frame.size());
  EXPECT_EQ(e.websocket->bytes_out, out_frame.size() + fragmented.size());
  EXPECT_EQ(e.websocket->messages_in, 2u);
  EXPECT_EQ(e.websocket->messages_out, 2u);
  EXPECT_TRUE(e.error.empty());
}

TEST_F(HttpCapture, RefusedUpgradeGoesOnAsHttp) {
  auto c = make();
  requests(c, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  requests(c, "GET /after HTTP/1.1\r\n\r\n");
  responses(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + response_with("", "x"));
  ASSERT_EQ(captured.size(), 2u);
  EXPECT_EQ(captured[0].response->status, 400);
  EXPECT_FALSE(captured[0].websocket);
  EXPECT_EQ(captured[1].request.target, "/after");
  EXPECT_EQ(captured[1].response->body.bytes, "x");
}

TEST_F(HttpCapture, CloseBeforeResponseEmitsTheRequestWithAnError) {
  auto c = make();
  requests(c, "GET /slow HTTP/1.1\r\n\r\n");
  now += 2s;
  c.on_close();
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].request.target, "/slow");
  EXPECT_FALSE(captured[0].response);
  EXPECT_EQ(captured[0].error, "connection closed before the response");
  EXPECT_EQ(captured[0].duration, 2s);
}

TEST_F(HttpCapture, ResponseWithoutLengthEndsAtClose) {
  auto c = make();
  requests(c, "GET / HTTP/1.1\r\n\r\n");
  responses(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
  EXPECT_TRUE(captured.empty());
  c.on_close();
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].response->body.bytes, "until the end");
  EXPECT_TRUE(captured[0].error.empty());
}

TEST_F(HttpCapture, GarbageRequestStopsCaptureWithoutThrowing) {
  auto c = make();
  requests(c, "GET /fine HTTP/1.1\r\n\r\n");
  responses(c, response_with("", "ok"));
  EXPECT_NO_THROW(requests(c, std::string{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11}));
  EXPECT_TRUE(c.stopped());
  EXPECT_NO_THROW(responses(c, "HTTP/1.1 200 OK\r\n\r\n"));
  EXPECT_NO_THROW(c.on_close());
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].request.target, "/fine");
}

TEST_F(HttpCapture, GarbageResponseShowsTheCompleteRequestWithTheReason) {
  auto c = make();
  requests(c, "GET /a HTTP/1.1\r\n\r\n");
  responses(c, "SSH-2.0-OpenSSH\r\n");
  EXPECT_TRUE(c.stopped());
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].request.target, "/a");
  EXPECT_FALSE(captured[0].response);
  EXPECT_EQ(captured[0].error.rfind("capture stopped: response is not valid HTTP", 0), 0u)
      << captured[0].error;
}

// A local service's response framed ambiguously (smuggling shapes) stops the
// capture, with the reason, at once and however the reads split it; the
// bytes after it are never taken for another response.
TEST_F(HttpCapture, AmbiguouslyFramedResponsesStopCaptureWithTheReason) {
  const std::vector<std::string> shapes = {
      "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\nok",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nok",
  };
  for (const std::string& shape : shapes) {
    for (const std::size_t step : {std::size_t{1}, shape.size()}) {
      captured.clear();
      auto c = make();
      requests(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
      EXPECT_NO_THROW(responses(c, shape + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", step));
      EXPECT_NO_THROW(c.on_close());
      EXPECT_TRUE(c.stopped()) << shape;
      ASSERT_FALSE(captured.empty()) << shape;
      EXPECT_EQ(captured[0].request.target, "/a");
      EXPECT_NE(captured[0].error.find("capture stopped"), std::string::npos)
          << shape << ": " << captured[0].error;
      for (const exchange& e : captured) {
        EXPECT_FALSE(e.response && e.request.target == "/b") << shape << ": desynchronised";
      }
    }
  }
}

TEST_F(HttpCapture, SinkThatThrowsDoesNotReachTheRelay) {
  http_capture c{http_capture_options{}, [](exchange) { throw std::runtime_error("full"); }};
  EXPECT_NO_THROW(c.on_request_bytes("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_NO_THROW(c.on_response_bytes("HTTP/1.1 204 No Content\r\n\r\n"));
  EXPECT_FALSE(c.stopped());
}

TEST_F(HttpCapture, TimingComesFromTheInjectedClock) {
  auto c = make();
  const auto began = now;
  requests(c, "POST / HTTP/1.1\r\nContent-Length: 2\r\n");  // the head begins here
  now += 10ms;
  requests(c, "\r\nab");
  now += 250ms;
  responses(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
  now += 40ms;
  responses(c, "ok");
  now += 1s;  // after the response: not part of the exchange
  c.on_close();
  ASSERT_EQ(captured.size(), 1u);
  EXPECT_EQ(captured[0].start, std::chrono::floor<std::chrono::milliseconds>(began));
  EXPECT_EQ(captured[0].duration, 300ms);
}

TEST_F(HttpCapture, PipelinedRequestStartsWhenItsOwnHeadBegins) {
  auto c = make();
  requests(c, "GET /one HTTP/1.1\r\n\r\n");
  now += 5ms;
  const auto second_began = now;
  requests(c, "GET /two HTTP/1.1\r\n\r\n");
  now += 20ms;
  responses(c, response_with("", "1") + response_with("", "2"), 1000);
  ASSERT_EQ(captured.size(), 2u);
  EXPECT_EQ(captured[1].start, std::chrono::floor<std::chrono::milliseconds>(second_began));
  EXPECT_EQ(captured[0].duration, 25ms);
  EXPECT_EQ(captured[1].duration, 20ms);
}

}  // namespace
}  // namespace porthole::inspect
