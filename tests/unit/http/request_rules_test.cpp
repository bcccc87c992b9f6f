#include "http/request_rules.h"

#include <gtest/gtest.h>

#include <string>

#include "http/error.h"

namespace porthole::http {
namespace {

using boost::system::error_code;

// A head: the request line, then each field line, then the empty line.
std::string head_of(std::string_view request_line, std::string_view fields) {
  return std::string(request_line) + "\r\n" + std::string(fields) + "\r\n";
}

error_code check(std::string_view fields, std::string_view request_line = "GET / HTTP/1.1") {
  return check_request_head(head_of(request_line, fields), 100);
}

TEST(RequestRules, PlainRequestsPass) {
  EXPECT_FALSE(check("Host: a.example\r\n"));
  EXPECT_FALSE(check("Host: a.example:8080\r\nAccept: */*\r\n"));
  EXPECT_FALSE(check("Host: [::1]:80\r\n"));
  EXPECT_FALSE(check("Host: a.example\r\nContent-Length: 5\r\n", "POST /up HTTP/1.1"));
  EXPECT_FALSE(check("Host: a.example\r\nContent-Length: 005\r\n", "POST /up HTTP/1.1"));
  EXPECT_FALSE(check("Host: a.example\r\nTransfer-Encoding: Chunked\r\n", "POST / HTTP/1.1"));
  EXPECT_FALSE(check("", "GET / HTTP/1.0"));
  EXPECT_FALSE(check("Host: a.example\r\nX-Tab:\tv\talue \r\n"));
  EXPECT_FALSE(check("Host: a.example\r\nX-Latin: caf\xe9\r\n"));
  EXPECT_FALSE(check("Host: a.example\r\n", "OPTIONS * HTTP/1.1"));
  EXPECT_FALSE(check("Host: a.example\r\n", "GET http://A.example/x?y HTTP/1.1"));
  EXPECT_FALSE(check("Host: a.example:443\r\n", "CONNECT a.example:443 HTTP/1.1"));
}

TEST(RequestRules, LineEndingsOtherThanCrlfAreRefused) {
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\nHost: a\r\n\r\n", 100), error::bare_line_ending);
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\r\nHost: a\n\r\n", 100), error::bare_line_ending);
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 100), error::bare_line_ending);
}

TEST(RequestRules, ObsFoldIsRefused) {
  EXPECT_EQ(check("Host: a\r\nX-A: one\r\n two\r\n"), error::obs_fold);
  EXPECT_EQ(check("Host: a\r\nX-A: one\r\n\ttwo\r\n"), error::obs_fold);
  EXPECT_EQ(check(" Host: a\r\n"), error::obs_fold);
}

TEST(RequestRules, WhitespaceBeforeTheColonIsRefused) {
  EXPECT_EQ(check("Host : a\r\n"), error::space_before_colon);
  EXPECT_EQ(check("Host: a\r\nContent-Length\t: 5\r\n"), error::space_before_colon);
}

TEST(RequestRules, FieldNamesMustBeTokens) {
  EXPECT_EQ(check("Host: a\r\n: empty\r\n"), error::bad_field_name);
  EXPECT_EQ(check("Host: a\r\nno colon\r\n"), error::bad_field_name);
  EXPECT_EQ(check("Host: a\r\nX(y): z\r\n"), error::bad_field_name);
  using namespace std::string_literals;
  EXPECT_EQ(check("Host: a\r\nX\0Y: z\r\n"s), error::bad_field_name);
}

TEST(RequestRules, ControlBytesInValuesAreRefused) {
  EXPECT_EQ(check(std::string("Host: a\r\nX: a\0b\r\n", 17)), error::bad_field_value);
  EXPECT_EQ(check("Host: a\r\nX: a\x01"
                  "b\r\n"),
            error::bad_field_value);
  EXPECT_EQ(check("Host: a\r\nX: a\x7f\r\n"), error::bad_field_value);
  EXPECT_EQ(check("Host: a\r\nX: a\x1b[31m\r\n"), error::bad_field_value);
}

TEST(RequestRules, MoreFieldsThanTheLimitAreRefused) {
  std::string fields = "Host: a\r\n";
  for (int i = 1; i < 100; ++i) {
    fields += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_FALSE(check(fields));  // 100 fields
  fields += "X-100: v\r\n";
  EXPECT_EQ(check(fields), error::too_many_fields);
  EXPECT_EQ(status_of(make_error_code(error::too_many_fields)), 431u);
}

TEST(RequestRules, MalformedRequestLinesAreRefused) {
  EXPECT_EQ(check("Host: a\r\n", "GET /"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET /a b HTTP/1.1"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET  / HTTP/1.1"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET / HTTP/1.1 "), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET / http/1.1"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET / HTTP/1.10"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "G(T / HTTP/1.1"), error::bad_request_line);
  EXPECT_EQ(check("Host: a\r\n", "GET /\t HTTP/1.1"), error::bad_target);
  EXPECT_EQ(check("Host: a\r\n", "GET /caf\xe9 HTTP/1.1"), error::bad_target);
}

TEST(RequestRules, VersionsOtherThanHttp1AreUnsupported) {
  EXPECT_EQ(check("Host: a\r\n", "GET / HTTP/2.0"), error::unsupported_version);
  EXPECT_EQ(check("", "PRI * HTTP/2.0"), error::unsupported_version);
  EXPECT_EQ(check("Host: a\r\n", "GET / HTTP/0.9"), error::unsupported_version);
  EXPECT_EQ(status_of(make_error_code(error::unsupported_version)), 505u);
}

TEST(RequestRules, TargetFormsMustSuitTheMethod) {
  EXPECT_EQ(check("Host: a\r\n", "GET * HTTP/1.1"), error::bad_target);
  EXPECT_EQ(check("Host: a\r\n", "GET index.html HTTP/1.1"), error::bad_target);
  EXPECT_EQ(check("Host: a\r\n", "GET ftp://a/ HTTP/1.1"), error::bad_target);
  EXPECT_EQ(check("Host: a\r\n", "GET http://user@a/ HTTP/1.1"), error::bad_target);
  EXPECT_EQ(check("Host: a\r\n", "CONNECT /x HTTP/1.1"), error::bad_target);
}

TEST(RequestRules, AbsoluteTargetNamingAnotherHostIsRefused) {
  EXPECT_EQ(check("Host: a.example\r\n", "GET http://b.example/ HTTP/1.1"), error::host_mismatch);
  EXPECT_EQ(check("Host: a.example\r\n", "GET https://b.example:443/x HTTP/1.1"),
            error::host_mismatch);
  EXPECT_EQ(check("Host: a.example:1\r\n", "CONNECT b.example:1 HTTP/1.1"), error::host_mismatch);
}

TEST(RequestRules, ContentLengthMustBeOneDecimalNumber) {
  const std::string_view post = "POST / HTTP/1.1";
  for (const char* bad :
       {"+5", "-1", "0x10", "5 5", "", "1e3", "18446744073709551616", "99999999999999999999999"}) {
    EXPECT_EQ(check(std::string("Host: a\r\nContent-Length: ") + bad + "\r\n", post),
              error::bad_content_length)
        << bad;
  }
  EXPECT_FALSE(check("Host: a\r\nContent-Length: 18446744073709551615\r\n", post));
}

TEST(RequestRules, RepeatedContentLengthIsRefusedEvenWhenEqual) {
  const std::string_view post = "POST / HTTP/1.1";
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n", post),
            error::duplicate_content_length);
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n", post),
            error::duplicate_content_length);
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5, 5\r\n", post), error::duplicate_content_length);
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5,6\r\n", post), error::duplicate_content_length);
}

TEST(RequestRules, ContentLengthWithTransferEncodingIsRefused) {
  const std::string_view post = "POST / HTTP/1.1";
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", post),
            error::content_length_and_chunked);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", post),
            error::content_length_and_chunked);
}

TEST(RequestRules, TransferEncodingMustBeOneChunked) {
  const std::string_view post = "POST / HTTP/1.1";
  auto te = [&](std::string_view fields) {
    return check("Host: a\r\n" + std::string(fields), post);
  };
  EXPECT_EQ(te("Transfer-Encoding: chunked, identity\r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: xchunked\r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: chunked, chunked\r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: identity\r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: \r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: chunked,\r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: \"chunked\"\r\n"), error::bad_transfer_encoding);
  EXPECT_EQ(te("Transfer-Encoding: gzip, chunked\r\n"), error::unsupported_transfer_coding);
  EXPECT_EQ(status_of(make_error_code(error::unsupported_transfer_coding)), 501u);
  EXPECT_EQ(check("Transfer-Encoding: chunked\r\n", "POST / HTTP/1.0"),
            error::transfer_encoding_in_http10);
}

TEST(RequestRules, HostMustBeOneHostAndPort) {
  EXPECT_EQ(check("Host: a.example\r\nHost: b.example\r\n"), error::duplicate_host);
  EXPECT_EQ(check("Host: a.example\r\nHost: a.example\r\n"), error::duplicate_host);
  for (const char* bad :
       {"a b", "a,b", "a/b", "user@a", "a:port", "[::1", "[zz]", "a:123456", ":80"}) {
    EXPECT_EQ(check(std::string("Host: ") + bad + "\r\n"), error::bad_host) << bad;
  }
}

TEST(RequestRules, EveryRuleHasANameAndAMessage) {
  for (int e = static_cast<int>(error::too_many_fields);
       e <= static_cast<int>(error::host_mismatch); ++e) {
    const error_code ec = make_error_code(static_cast<error>(e));
    EXPECT_STRNE(rule_name(ec), "") << e;
    EXPECT_NE(ec.message(), "unknown HTTP error") << e;
  }
}

TEST(BareLineEnding, FindsLfWithoutCrAndCrWithoutLf) {
  EXPECT_EQ(find_bare_line_ending("GET / HTTP/1.1\r\n", 0), std::string_view::npos);
  EXPECT_EQ(find_bare_line_ending("GET / HTTP/1.1\r", 0), std::string_view::npos);
  EXPECT_EQ(find_bare_line_ending("GET / HTTP/1.1\n", 0), 14u);
  EXPECT_EQ(find_bare_line_ending("GET\r/ HTTP/1.1", 0), 3u);
  EXPECT_EQ(find_bare_line_ending("\n", 0), 0u);
}

TEST(BareLineEnding, FindsTheFirstOfEitherKindFromAnyStart) {
  // Every string of up to 7 bytes over {a, CR, LF}, from every start, against
  // the rule read byte by byte.
  const auto reference = [](std::string_view in, std::size_t from) {
    for (std::size_t i = from; i < in.size(); ++i) {
      if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) {
        return i;
      }
      if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] != '\n') {
        return i;
      }
    }
    return std::string_view::npos;
  };
  const char alphabet[] = {'a', '\r', '\n'};
  for (std::size_t len = 0; len <= 7; ++len) {
    std::size_t combos = 1;
    for (std::size_t k = 0; k < len; ++k) {
      combos *= 3;
    }
    for (std::size_t c = 0; c < combos; ++c) {
      std::string in;
      for (std::size_t k = 0, n = c; k < len; ++k, n /= 3) {
        in += alphabet[n % 3];
      }
      for (std::size_t from = 0; from <= len; ++from) {
        ASSERT_EQ(find_bare_line_ending(in, from), reference(in, from))
            << testing::PrintToString(in) << " from " << from;
      }
    }
  }
}

}  // namespace
}  // namespace porthole::http
