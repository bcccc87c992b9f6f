#include "http/form.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace porthole::http {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(Form, DecodesPlusAndPercentEscapesAndKeepsMalformedOnes) {
  EXPECT_EQ(form_decode("two+words%21%2b"), "two words!+");
  EXPECT_EQ(form_decode("100%"), "100%");
  EXPECT_EQ(form_decode("%zz%4"), "%zz%4");
  EXPECT_EQ(form_decode("%00"), std::string(1, '\0'));
}

TEST(Form, PairsKeepOrderAndRepeatsAndSkipEmptyOnes) {
  EXPECT_THAT(parse_form("a=1&&b=x+y&a=2&flag"),
              ElementsAre(Pair("a", "1"), Pair("b", "x y"), Pair("a", "2"), Pair("flag", "")));
  EXPECT_TRUE(parse_form("").empty());
}

}  // namespace
}  // namespace porthole::http
