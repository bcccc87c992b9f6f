#include "http/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace porthole::http {
namespace {

TEST(Base64, RoundTripsAnyBytes) {
  for (const std::string& s : {std::string(), std::string("a"), std::string("ab"),
                               std::string("abc"), std::string("\0\xff\x10\x20", 4)}) {
    EXPECT_EQ(from_base64(base64(s)), s);
  }
  EXPECT_EQ(base64("user:pass"), "dXNlcjpwYXNz");
}

TEST(Base64, OnlyStrictPaddedBase64IsDecoded) {
  EXPECT_FALSE(from_base64("abc"));        // not a multiple of 4
  EXPECT_FALSE(from_base64("ab=c"));       // '=' before the end
  EXPECT_FALSE(from_base64("a==="));       // more padding than base64 has
  EXPECT_FALSE(from_base64("ab c"));       // a blank, which OpenSSL alone would skip
  EXPECT_FALSE(from_base64("Y\nI="));       // a line break
  EXPECT_FALSE(from_base64("YWJj!A=="));   // outside the alphabet
  EXPECT_EQ(from_base64("YQ=="), "a");
  EXPECT_EQ(from_base64("YWI="), "ab");
}

}  // namespace
}  // namespace porthole::http
