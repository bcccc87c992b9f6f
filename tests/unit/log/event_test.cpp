#include "log/event.h"

#include <gtest/gtest.h>

#include <string>

namespace porthole::log {
namespace {

TEST(TextLine, IsTheMessageThenKeyValueFields) {
  EXPECT_EQ(render_text("tunnel up", {{"url", "http://a.localhost"}, {"n", 3}, {"tls", true}}),
            "tunnel up url=http://a.localhost n=3 tls=true");
}

TEST(TextLine, QuotesValuesWithSpacesQuotesEqualsOrBackslashes) {
  EXPECT_EQ(render_text("m", {{"a", "two words"}}), "m a=\"two words\"");
  EXPECT_EQ(render_text("m", {{"a", "x=y"}}), "m a=\"x=y\"");
  EXPECT_EQ(render_text("m", {{"a", "say \"hi\""}}), "m a=\"say \\\"hi\\\"\"");
  EXPECT_EQ(render_text("m", {{"a", "c:\\dir"}}), "m a=\"c:\\\\dir\"");
}

TEST(TextLine, QuotesEmptyValuesAndEscapesControlCharacters) {
  EXPECT_EQ(render_text("m", {{"a", ""}}), "m a=\"\"");
  EXPECT_EQ(render_text("m", {{"a", "x\ny\x01"}}), "m a=\"x\\ny\\x01\"");
}

TEST(TextLine, LeavesOutOmittedFields) {
  EXPECT_EQ(render_text("m", {{"suppressed", if_nonzero(0)}, {"b", 1}}), "m b=1");
  EXPECT_EQ(render_text("m", {{"suppressed", if_nonzero(4)}}), "m suppressed=4");
}

TEST(JsonLine, HasTypedMembers) {
  EXPECT_EQ(render_json_members("up", {{"url", "u"}, {"n", -2}, {"ok", false}, {"x", 1.5}}),
            R"("msg":"up","url":"u","n":-2,"ok":false,"x":1.5)");
}

TEST(JsonLine, EscapesAndReplacesInvalidUtf8) {
  EXPECT_EQ(json_string("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
  EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(json_string("bad\xff"), R"("bad\ufffd")");
}

}  // namespace
}  // namespace porthole::log
