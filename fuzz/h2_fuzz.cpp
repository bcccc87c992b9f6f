// What a public HTTP/2 client sends to portholed (after the client preface,
// which the input starts with if it does not itself): frames that nghttp2
// reads with the settings and options portholed's public sessions use, each
// request's head then mapped to the HTTP/1.1 head portholed forwards
// (http/h2_mapping.h), decided on (server/edge_decision.h) and checked as any
// public head is; and the bytes after a "\n--\n" marker read as a local
// service's HTTP/1.1 response, decoded (body sink), its head mapped to
// HTTP/2 fields, and its body viewed as gRPC (inspect/grpc_view.h).
//
// Properties:
//  - no crash, whatever the frames;
//  - a forwarded head (forward decided, check passed) parses as one whole
//    HTTP/1.1 request head, with the method and target of the HTTP/2 request;
//  - HTTP/2 response fields have lower-case names and none is
//    connection-specific;
//  - a decoded body is never longer than the bytes it came from.

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "check.h"
#include "http/forwarding.h"
#include "http/h2_mapping.h"
#include "http/message_parser.h"
#include "http/request_rules.h"
#include "inspect/grpc_view.h"
#include "server/edge_decision.h"

namespace {

namespace http = porthole::http;
namespace server = porthole::server;
namespace inspect = porthole::inspect;

constexpr std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct session_state {
  std::map<std::int32_t, http::h2_request> requests;
  std::map<std::int32_t, bool> ended;
};

int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto& s = *static_cast<session_state*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    s.requests[frame->hd.stream_id] = {};
  }
  return 0;
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
              std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
              void* user) {
  auto& s = *static_cast<session_state*>(user);
  const auto it = s.requests.find(frame->hd.stream_id);
  if (it == s.requests.end() || it->second.fields.size() > 200) {
    return 0;
  }
  const std::string n(reinterpret_cast<const char*>(name), namelen);
  const std::string v(reinterpret_cast<const char*>(value), valuelen);
  http::h2_request& r = it->second;
  if (n == ":method") {
    r.method = v;
  } else if (n == ":scheme") {
    r.scheme = v;
  } else if (n == ":authority") {
    r.authority = v;
  } else if (n == ":path") {
    r.path = v;
  } else if (!n.empty() && n[0] != ':') {
    r.fields.push_back({n, v});
  }
  return 0;
}

void forward(const http::h2_request& r, bool ends) {
  server::tunnel t;
  t.url = "http://app.localhost";
  t.protocol = "http";
  t.host = "app.localhost";
  t.http_auth = "user:pass";
  server::request_facts facts;
  if (!r.authority.empty()) {
    facts.host = r.authority;
  } else {
    facts.host = r.find("host");
  }
  facts.authorization = r.find("authorization");
  server::connection_facts conn;
  conn.scheme = "http";
  conn.client_ip = "203.0.113.7";
  const bool ours = server::request_host(facts) == t.host;
  const server::edge_decision d =
      server::decide(facts, server::route_facts{ours ? &t : nullptr}, conn);
  if (d.what != server::edge_decision::action::forward) {
    return;
  }
  const http::h1_body framing = http::body_framing(r, ends);
  const std::string head =
      http::add_forwarded_fields(http::h1_request_head(r, framing), d.forwarded);
  if (http::check_request_head(head, 1000)) {
    return;  // refused with a 400, as portholed does
  }
  http::request_parser p;
  const http::parse_result parsed = p.parse(head);
  FUZZ_CHECK(!parsed.error && parsed.head_complete && parsed.consumed == head.size());
  FUZZ_CHECK(p.head().method == r.method && p.head().target == r.path);
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto& s = *static_cast<session_state*>(user);
  const auto it = s.requests.find(frame->hd.stream_id);
  if (it != s.requests.end() && frame->hd.type == NGHTTP2_HEADERS &&
      !s.ended.contains(frame->hd.stream_id)) {
    const bool ends = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    s.ended[frame->hd.stream_id] = ends;
    forward(it->second, ends);
  }
  return 0;
}

void requests(std::string_view bytes) {
  session_state state;
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  nghttp2_session* session = nullptr;
  nghttp2_session_server_new2(&session, cbs, &state, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                             {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 32768}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 2);
  std::string input(bytes.substr(0, preface.size()) == preface ? "" : preface);
  input += bytes;
  nghttp2_session_mem_recv(session, reinterpret_cast<const std::uint8_t*>(input.data()),
                           input.size());
  const std::uint8_t* out = nullptr;
  while (nghttp2_session_mem_send(session, &out) > 0) {
  }
  nghttp2_session_del(session);
}

struct counted final : http::body_sink {
  std::size_t bytes = 0;
  void body(std::string_view b) override { bytes += b.size(); }
  void trailer(std::string_view, std::string_view) override {}
};

void response(std::string_view bytes) {
  http::response_parser p;
  counted sink;
  p.decode_into(&sink);
  p.expect("POST");
  const http::parse_result r = p.parse(bytes);
  if (r.error || !r.head_complete) {
    return;
  }
  for (const http::field& f : http::h2_response_fields(p.head())) {
    for (const char c : f.name) {
      FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    }
    FUZZ_CHECK(!http::is_connection_specific(f.name) && f.name != "te");
  }
  std::string_view rest = bytes.substr(r.consumed);
  while (!rest.empty()) {
    const http::parse_result b = p.parse(rest);
    if (b.error || b.consumed == 0) {
      break;
    }
    rest.remove_prefix(b.consumed);
  }
  FUZZ_CHECK(sink.bytes <= bytes.size());
  inspect::header_list headers;
  for (const http::field& f : p.head().fields) {
    headers.emplace_back(f.name, f.value);
  }
  inspect::captured_body body;
  body.bytes = std::string(bytes.substr(r.consumed));
  body.size = body.bytes.size();
  (void)inspect::grpc_of(headers, body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t marker = input.find("\n--\n");
  requests(input.substr(0, marker));
  if (marker != std::string_view::npos) {
    response(input.substr(marker + 4));
  }
  return 0;
}
