#include "server/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace porthole::server {
namespace {

TEST(PrometheusLabel, EscapesBackslashQuoteAndLineFeed) {
  EXPECT_EQ(escape_label_value(R"(a\b"c)" "\n" "d"), R"(a\\b\"c\nd)");
  EXPECT_EQ(escape_label_value("plain"), "plain");
}

TEST(PrometheusHelp, EscapesBackslashAndLineFeedButNotQuotes) {
  EXPECT_EQ(escape_help("say \"hi\"\\\nbye"), "say \"hi\"\\\\\\nbye");
}

TEST(Exposition, WritesHelpTypeThenSamples) {
  exposition e;
  e.family("x_total", "counter", "Things\nthat happened.");
  e.sample("x_total", {{"kind", "a\"b"}, {"dir", "in"}}, std::uint64_t{7});
  e.sample("x_total", {}, std::uint64_t{0});
  EXPECT_EQ(e.text(),
            "# HELP x_total Things\\nthat happened.\n"
            "# TYPE x_total counter\n"
            "x_total{kind=\"a\\\"b\",dir=\"in\"} 7\n"
            "x_total 0\n");
}

TEST(RenderMetrics, ShowsTheCountsWithTheirLabels) {
  metrics m;
  ++m.opened(public_protocol::tcp);
  m.in(public_protocol::http) += 123;
  m.count(error_kind::auth_refused);
  ++m.messages_in["Ping"];
  m.pool_hits = 2;
  const std::string page = render_metrics(m, process_stats{}, "1.2.3");
  EXPECT_NE(page.find("porthole_build_info{version=\"1.2.3\"} 1\n"), std::string::npos) << page;
  EXPECT_NE(page.find("porthole_public_connections_opened_total{protocol=\"tcp\"} 1\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("porthole_public_bytes_total{protocol=\"http\",direction=\"in\"} 123\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("porthole_errors_total{kind=\"auth_refused\"} 1\n"), std::string::npos)
      << page;
  EXPECT_NE(page.find("porthole_control_messages_total{type=\"Ping\",direction=\"in\"} 1\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("porthole_proxy_pool_hits_total 2\n"), std::string::npos) << page;
  EXPECT_NE(page.find("# TYPE porthole_errors_total counter\n"), std::string::npos) << page;
}

}  // namespace
}  // namespace porthole::server
