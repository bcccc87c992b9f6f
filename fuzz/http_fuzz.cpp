// What a public client sends to portholed's HTTP and HTTPS listeners, and
// what a tunnel client's backend sends back: a stream of HTTP/1.1 requests,
// optionally followed by a stream of responses to them (the part from the
// first "HTTP/" where a request would start). The server frames both with
// src/http/message_parser.h, routes each request by its Host header
// (routing_host, route_key) and rewrites its X-Forwarded-* fields.
//
// Properties:
//  - no crash; each stream is read as the relay reads it;
//  - the same heads, message ends and errors whether the bytes arrive at once
//    or in small pieces (the relay sees whatever the socket gives it);
//  - a routing name has no upper case and no leading blank, a
//    name a tunnel could register routes to itself, and a route is only
//    found for a Host header naming that tunnel;
//  - the rewritten head parses to the same request: same method, target,
//    version and fields (but the edge's forwarding fields, those the
//    client's Connection names, and Connection's other options), same
//    framing, nothing after it; its Connection names no field, and each
//    forwarding field portholed sets is there once.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "check.h"
#include "http/ascii.h"
#include "http/forwarding.h"
#include "http/message_parser.h"
#include "server/tunnel.h"

namespace {

namespace http = porthole::http;
namespace server = porthole::server;

// What the relay saw of a stream, in order, to compare two ways of feeding it.
struct transcript {
  std::vector<std::string> events;
  std::size_t message_end = 0;  ///< offset after the last complete message
  bool failed = false;
  bool operator==(const transcript&) const = default;
};

std::string describe_fields(const std::vector<http::field>& fields) {
  std::string out;
  for (const auto& f : fields) {
    out += f.name;
    out += ':';
    out += f.value;
    out += '\n';
  }
  return out;
}

std::string describe(const http::request_head& h) {
  return h.method + ' ' + h.target + ' ' + std::to_string(h.version) + ' ' +
         std::to_string(h.keep_alive) + std::to_string(h.upgrade) + '\n' +
         describe_fields(h.fields);
}

std::string describe(const http::response_head& h) {
  return std::to_string(h.status) + ' ' + h.reason + ' ' + std::to_string(h.version) + ' ' +
         std::to_string(h.keep_alive) + '\n' + describe_fields(h.fields);
}

// The piece sizes of a feeding: 0 is all at once.
constexpr std::size_t piece_sizes[] = {1, 7, 2, 300, 3, 1, 4096, 5};

// Reads `in` as the relay does: parse the unparsed bytes, drop what was
// consumed, read more when nothing was. `on_head` sees each complete head
// and its bytes.
template <typename Parser, typename OnHead>
transcript read_stream(Parser& parser, std::string_view in, bool at_once, OnHead on_head) {
  transcript t;
  std::string buffer;
  std::size_t fed = 0;
  std::size_t offset = 0;  // of buffer[0] in `in`
  std::size_t piece = 0;
  for (;;) {
    const http::parse_result r = parser.parse(buffer);
    FUZZ_CHECK(r.consumed <= buffer.size());
    if (r.error) {
      FUZZ_CHECK(!r.head_complete && !r.message_complete);
      t.failed = true;
      t.events.push_back("error");
      return t;
    }
    if (r.head_complete) {
      FUZZ_CHECK(r.consumed > 0);
      const std::string_view head_bytes = std::string_view(buffer).substr(0, r.consumed);
      FUZZ_CHECK(head_bytes.ends_with("\r\n\r\n"));
      t.events.push_back("head@" + std::to_string(offset) + ' ' + describe(parser.head()));
      on_head(parser.head(), head_bytes);
    }
    if (r.message_complete) {
      t.message_end = offset + r.consumed;
      t.events.push_back("end@" + std::to_string(t.message_end));
    }
    buffer.erase(0, r.consumed);
    offset += r.consumed;
    if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
      if (fed == in.size()) {
        return t;  // EOF
      }
      const std::size_t n = at_once ? in.size() : piece_sizes[piece++ % std::size(piece_sizes)];
      const std::string_view more = in.substr(fed, n);
      buffer.append(more);
      fed += more.size();
    }
  }
}

// The routes of a few tunnels, as server::open_tunnels makes them (from names
// valid_hostname accepts, so never an IP literal).
const std::map<std::string, std::string, std::less<>>& routes() {
  static const auto table = [] {
    std::map<std::string, std::string, std::less<>> t;
    for (const std::string host : {"foo.localhost", "example.com", "a.b.localhost"}) {
      for (const std::string scheme : {"http", "https"}) {
        t[server::route_key(scheme, host)] = host;
      }
    }
    return t;
  }();
  return table;
}

void check_routing(std::string_view host_field) {
  const std::string host = http::routing_host(host_field);
  FUZZ_CHECK(host.size() <= host_field.size());
  FUZZ_CHECK(std::none_of(host.begin(), host.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
  FUZZ_CHECK(host.empty() || !http::is_ows(host.front()));
  if (server::valid_hostname(host)) {
    FUZZ_CHECK(http::routing_host(host) == host);
  }
  const auto route = routes().find(server::route_key("https", host));
  if (route != routes().end()) {
    // The Host header names the tunnel, perhaps with a root dot and a port.
    std::string named(http::trim_ows(host_field));
    for (char& c : named) {
      c = http::ascii_lower(c);
    }
    FUZZ_CHECK(named.starts_with(route->second));
    std::string_view rest = std::string_view(named).substr(route->second.size());
    if (rest.starts_with('.')) {
      rest.remove_prefix(1);
    }
    FUZZ_CHECK(rest.empty() ||
               (rest.front() == ':' && rest.find(':', 1) == std::string_view::npos));
  }
}

template <std::size_t N>
bool is_one_of(std::string_view name, const std::array<std::string_view, N>& names) {
  return std::any_of(names.begin(), names.end(),
                     [name](std::string_view n) { return http::iequals(name, n); });
}

// Connection options the forwarded head keeps, and the fields they name.
constexpr std::array<std::string_view, 4> end_to_end_options = {"close", "keep-alive", "upgrade",
                                                                "te"};
// Fields no Connection option can drop.
constexpr std::array<std::string_view, 4> framing_fields = {
    "host", "content-length", "transfer-encoding", "proxy-connection"};

std::vector<std::string> connection_options(const std::vector<http::field>& fields) {
  std::vector<std::string> options;
  for (const auto& f : fields) {
    if (!http::iequals(f.name, "connection")) {
      continue;
    }
    std::string_view list = f.value;
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      const std::string_view item = http::trim_ows(list.substr(0, comma));
      if (!item.empty()) {
        options.emplace_back(item);
      }
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
  }
  return options;
}

// The fields of a request the service sees as the client sent them: not
// Connection, not the edge's, not made hop-by-hop by the client's Connection.
std::vector<http::field> passed_as_sent(const std::vector<http::field>& fields,
                                        const std::vector<std::string>& hop_by_hop) {
  std::vector<http::field> out;
  for (const auto& f : fields) {
    const bool named = std::any_of(hop_by_hop.begin(), hop_by_hop.end(), [&](const std::string& o) {
      return http::iequals(o, f.name) && !is_one_of(o, end_to_end_options) &&
             !is_one_of(o, framing_fields);
    });
    if (!named && !http::iequals(f.name, "connection") && !http::is_edge_field(f.name)) {
      out.push_back(f);
    }
  }
  return out;
}

bool same_fields(const std::vector<http::field>& a, const std::vector<http::field>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const http::field& x, const http::field& y) {
                      return x.name == y.name && x.value == y.value;
                    });
}

// As public_http's on_head does before it forwards a request.
void check_forwarding(const http::request_head& h, std::string_view head_bytes,
                      std::string_view host_field) {
  const std::string out =
      http::add_forwarded_fields(head_bytes, {"203.0.113.7", "https", std::string(host_field)});
  // The client's capture reads it: it must parse there (forwarded_limits).
  http::request_parser again{http::forwarded_limits};
  const http::parse_result r = again.parse(out);
  FUZZ_CHECK(!r.error);
  FUZZ_CHECK(r.head_complete && r.consumed == out.size());
  const http::request_head& g = again.head();
  FUZZ_CHECK(g.method == h.method && g.target == h.target && g.version == h.version);
  FUZZ_CHECK(g.keep_alive == h.keep_alive && g.upgrade == h.upgrade);
  FUZZ_CHECK(same_fields(passed_as_sent(g.fields, {}),
                         passed_as_sent(h.fields, connection_options(h.fields))));
  // The forwarded Connection names no field: a proxy behind the tunnel drops nothing.
  for (const auto& option : connection_options(g.fields)) {
    FUZZ_CHECK(is_one_of(option, end_to_end_options));
  }
  std::map<std::string, std::size_t> edge_fields;  // lower-case name -> count
  std::string_view last_for;
  for (const auto& f : g.fields) {
    if (!http::is_edge_field(f.name)) {
      continue;
    }
    std::string name = f.name;
    std::transform(name.begin(), name.end(), name.begin(), http::ascii_lower);
    ++edge_fields[name];
    if (name == "x-forwarded-proto") {
      FUZZ_CHECK(f.value == "https");
    } else if (name == "x-real-ip") {
      FUZZ_CHECK(f.value == "203.0.113.7");
    } else if (name == "x-forwarded-for") {
      last_for = f.value;
    }
  }
  FUZZ_CHECK(edge_fields.erase("x-forwarded-for") == 1);
  for (const char* name :
       {"x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip", "forwarded"}) {
    FUZZ_CHECK(edge_fields[name] == 1);
  }
  FUZZ_CHECK(edge_fields.size() == 5);
  // The client is the last element of the list (RFC 7239 order).
  FUZZ_CHECK(last_for.ends_with("203.0.113.7"));
}

void on_request(const http::request_head& h, std::string_view head_bytes) {
  const auto host_field = h.find("host");
  if (!host_field || host_field->empty()) {
    return;  // answered 400 by the server
  }
  check_routing(*host_field);
  if (const auto authorization = h.find("authorization")) {
    http::basic_auth_matches(*authorization, "user:secret");
  }
  check_forwarding(h, head_bytes, *host_field);
}

struct request_reading {
  transcript t;
  std::vector<std::string> methods;
};

request_reading read_requests(std::string_view in, bool at_once) {
  request_reading out;
  http::request_parser parser;
  out.t = read_stream(parser, in, at_once, [&](const http::request_head& h, std::string_view b) {
    out.methods.push_back(h.method);
    on_request(h, b);
  });
  parser.release();
  return out;
}

transcript read_responses(std::string_view in, const std::vector<std::string>& methods,
                          bool at_once) {
  http::response_parser parser;
  for (const auto& m : methods) {
    parser.expect(m);
  }
  transcript t =
      read_stream(parser, in, at_once, [](const http::response_head&, std::string_view) {});
  t.events.push_back("pending " + std::to_string(parser.pending()) + " switched " +
                     std::to_string(parser.switched_protocols()) + " until close " +
                     std::to_string(parser.body_until_close()));
  parser.release();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const request_reading whole = read_requests(in, true);
  const request_reading pieces = read_requests(in, false);
  FUZZ_CHECK(whole.t == pieces.t);

  const std::string_view rest = in.substr(whole.t.message_end);
  if (rest.starts_with("HTTP/")) {
    const transcript r_whole = read_responses(rest, whole.methods, true);
    const transcript r_pieces = read_responses(rest, whole.methods, false);
    FUZZ_CHECK(r_whole == r_pieces);
  }
  return 0;
}
