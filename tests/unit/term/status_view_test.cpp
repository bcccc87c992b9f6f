#include "term/status_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace porthole::term {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const steady_clock::time_point now = steady_clock::time_point{} + 1000s;

status_snapshot online_with_tunnels() {
  status_snapshot s;
  s.state = link_state::online;
  s.client_version = "0.1.0";
  s.server_version = "0.1.0";
  s.forwarding = {{"http://blog.example.com", "127.0.0.1:4000", "blog"},
                  {"https://blog.example.com", "127.0.0.1:4000", "blog"},
                  {"tcp://example.com:52001", "127.0.0.1:22", "ssh"}};
  s.web_interface = "http://127.0.0.1:4040";
  s.open_connections = 2;
  s.total_connections = 17;
  s.total_requests = 12;
  s.requests_per_second = 0.25;
  return s;
}

std::vector<std::string> text(const status_snapshot& s, screen_size size = {100, 30}) {
  std::vector<std::string> out;
  for (const screen_line& l : layout(s, size, now)) {
    out.push_back(l.plain(static_cast<std::size_t>(size.cols)));
  }
  return out;
}

// The line whose label is `label` (the first one), without the label column.
std::string value_of(const std::vector<std::string>& lines, const std::string& label) {
  for (const std::string& l : lines) {
    if (l.starts_with(label + " ")) {
      return l.substr(30);
    }
  }
  return "(no " + label + ")";
}

TEST(StatusView, ShowsTheFieldsInNgrokOrderWithLabelsInAColumn) {
  const auto lines = text(online_with_tunnels());
  EXPECT_THAT(lines[0], StartsWith("porthole"));
  EXPECT_EQ(lines[0].size(), 100U);
  EXPECT_THAT(lines[0], ::testing::EndsWith("(q or Ctrl+C to quit)"));
  EXPECT_EQ(lines[2], "Tunnel Status                 online");
  EXPECT_EQ(lines[3], "Version                       0.1.0/0.1.0");
  EXPECT_EQ(lines[4], "Forwarding                    http://blog.example.com -> 127.0.0.1:4000");
  EXPECT_EQ(lines[5], "Forwarding                    https://blog.example.com -> 127.0.0.1:4000");
  EXPECT_EQ(lines[6], "Forwarding                    tcp://example.com:52001 -> 127.0.0.1:22");
  EXPECT_EQ(lines[7], "Web Interface                 http://127.0.0.1:4040");
  EXPECT_EQ(lines[8], "Connections                   2 open, 17 total");
  EXPECT_EQ(lines[9], "Requests                      12 total, 0.25/s over the last minute");
}

TEST(StatusView, SaysEachStateInPlainWords) {
  status_snapshot s = online_with_tunnels();
  s.state = link_state::connecting;
  EXPECT_EQ(value_of(text(s), "Tunnel Status"), "connecting");
  s.state = link_state::reconnecting;
  s.retry_at = now + 3500ms;
  EXPECT_EQ(value_of(text(s), "Tunnel Status"), "reconnecting (retry in 4s)");
  s.retry_at = now - 1s;  // dialing now
  EXPECT_EQ(value_of(text(s), "Tunnel Status"), "reconnecting");
  s.state = link_state::offline;
  s.offline_reason = "the server refused the client: invalid authtoken";
  EXPECT_EQ(value_of(text(s), "Tunnel Status"),
            "offline: the server refused the client: invalid authtoken");
}

TEST(StatusView, ShowsADashForAServerVersionNotYetKnown) {
  status_snapshot s;
  s.client_version = "0.1.0";
  EXPECT_EQ(value_of(text(s), "Version"), "0.1.0/-");
}

TEST(StatusView, WrapsALongValueInTheValueColumnAtSpaces) {
  status_snapshot s = online_with_tunnels();
  s.refused = {{"web", "http", "The tunnel http://taken.example.com is already registered."}};
  const auto lines = text(s, {70, 30});
  auto it = std::find_if(lines.begin(), lines.end(),
                         [](const std::string& l) { return l.starts_with("Refused"); });
  ASSERT_NE(it, lines.end());
  EXPECT_EQ(*it, "Refused                       web (http): The tunnel");
  EXPECT_EQ(*(it + 1), "                              http://taken.example.com is already");
  EXPECT_EQ(*(it + 2), "                              registered.");
}

TEST(StatusView, ListsRequestsNewestFirstAsManyAsFit) {
  status_snapshot s = online_with_tunnels();
  for (int i = 9; i >= 0; --i) {
    s.requests.push_back({"GET", "/r" + std::to_string(i), 200, "OK", 1500us, ""});
  }
  const auto lines = text(s, {80, 16});
  ASSERT_EQ(lines.size(), 16U);
  EXPECT_EQ(lines[11], "HTTP Requests");
  EXPECT_EQ(lines[12], "-------------");
  EXPECT_THAT(lines[14], StartsWith("GET     /r9 "));
  EXPECT_THAT(lines[15], StartsWith("GET     /r8 "));
}

TEST(StatusView, ARequestRowHasMethodPathStatusAndDurationInColumns) {
  status_snapshot s = online_with_tunnels();
  s.requests = {{"POST", "/webhook", 502, "Bad Gateway", 12300us, ""},
                {"GET", "/slow", 200, "OK", 2500ms, ""},
                {"GET", "/gone", 0, "", 40us, "local service unreachable"}};
  const auto lines = text(s, {80, 30});
  const auto first = std::find_if(lines.begin(), lines.end(),
                                  [](const std::string& l) { return l.starts_with("POST"); });
  ASSERT_NE(first, lines.end());
  EXPECT_EQ(*first,
            "POST    /webhook                            502 Bad Gateway                12 ms");
  EXPECT_EQ(*(first + 1),
            "GET     /slow                               200 OK                         2.5 s");
  EXPECT_EQ(*(first + 2),
            "GET     /gone                               local service unreachable    <0.1 ms");
}

TEST(StatusView, CutsALongPathWithDots) {
  status_snapshot s = online_with_tunnels();
  s.requests = {{"GET", "/" + std::string(200, 'a'), 200, "OK", 1ms, ""}};
  const auto lines = text(s, {80, 30});
  EXPECT_THAT(lines.back(), HasSubstr("aaa... 200 OK"));
  EXPECT_EQ(lines.back().size(), 80U);
}

TEST(StatusView, ControlCharactersFromTheNetworkAreNeverDrawn) {
  status_snapshot s = online_with_tunnels();
  s.requests = {{"GET", "/\x1b[2J\x1b]0;owned\x07", 200, "O\rK", 1ms, ""}};
  const std::string bytes = frame(layout(s, {100, 30}, now), {100, 30}, false);
  EXPECT_THAT(bytes, HasSubstr("/?[2J?]0;owned?"));
  EXPECT_THAT(bytes, HasSubstr("200 O?K"));
  EXPECT_EQ(bytes.find("\x1b]"), std::string::npos);
  EXPECT_EQ(bytes.find('\a'), std::string::npos);
}

TEST(StatusView, ATcpOnlyClientHasNoRequestList) {
  status_snapshot s;
  s.state = link_state::online;
  s.forwarding = {{"tcp://example.com:52001", "127.0.0.1:22", "ssh"}};
  const auto lines = text(s);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "HTTP Requests"), 0);
  EXPECT_EQ(value_of(lines, "Requests"), "(no Requests)");
}

TEST(StatusView, EveryLineFitsANarrowScreen) {
  status_snapshot s = online_with_tunnels();
  s.last_problem = problem_row{std::chrono::system_clock::now(),
                               "cannot reach server tunnel.example.com:443: Connection refused"};
  s.requests = {{"GET", "/a/very/long/path/indeed", 404, "Not Found", 3ms, ""}};
  for (const std::string& l : text(s, {40, 30})) {
    EXPECT_LE(l.size(), 40U) << l;
  }
}

TEST(StatusView, ColoursOnlyWhenAsked) {
  const auto lines = layout(online_with_tunnels(), {100, 30}, now);
  const std::string plain = frame(lines, {100, 30}, false);
  const std::string coloured = frame(lines, {100, 30}, true);
  EXPECT_EQ(plain.find("\x1b[32m"), std::string::npos);
  EXPECT_THAT(coloured, HasSubstr("\x1b[32monline\x1b[0m"));
}

TEST(StatusView, AFrameRedrawsInPlaceWithoutScrolling) {
  // A full screen: a line break between rows, none after the last.
  const screen_size full{60, 12};
  const auto lines = layout(online_with_tunnels(), full, now);
  ASSERT_EQ(lines.size(), 12U);
  std::string bytes = frame(lines, full, false);
  EXPECT_THAT(bytes, StartsWith("\x1b[?2026h\x1b[H"));
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), '\n'), 11);
  EXPECT_EQ(bytes.find("\x1b[J"), std::string::npos);
  // A taller screen: the rest is cleared from the line after the last.
  const screen_size tall{60, 40};
  const auto fewer = layout(online_with_tunnels(), tall, now);
  bytes = frame(fewer, tall, false);
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), '\n'), static_cast<long>(fewer.size()));
  EXPECT_THAT(bytes, HasSubstr("\r\n\x1b[J"));
}

TEST(StatusView, FormatsDurations) {
  EXPECT_EQ(format_duration(40us), "<0.1 ms");
  EXPECT_EQ(format_duration(400us), "0.4 ms");
  EXPECT_EQ(format_duration(12345us), "12 ms");
  EXPECT_EQ(format_duration(2500ms), "2.5 s");
}

}  // namespace
}  // namespace porthole::term

namespace porthole::term {
namespace {

TEST(StatusView, ARequestThatCameOverHttp2SaysSo) {
  status_snapshot s = online_with_tunnels();
  request_row row{"GET", "/app.js", 200, "OK", std::chrono::microseconds(900), ""};
  row.protocol = "h2";
  s.requests = {row};
  const auto lines = text(s, {80, 30});
  const auto it = std::find_if(lines.begin(), lines.end(),
                               [](const std::string& l) { return l.starts_with("GET"); });
  ASSERT_NE(it, lines.end());
  EXPECT_THAT(*it, ::testing::HasSubstr("200 OK (h2)"));
}

}  // namespace
}  // namespace porthole::term
