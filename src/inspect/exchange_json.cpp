#include "inspect/exchange_json.h"

#include <nlohmann/json.hpp>

#include "http/base64.h"
#include "inspect/grpc_view.h"
#include "inspect/http_capture.h"
#include "inspect/text.h"

namespace porthole::inspect {
namespace {

using json = nlohmann::json;

json headers_json(const header_list& headers) {
  json out = json::object();
  for (const auto& [name, value] : headers) {
    out[name].push_back(value);
  }
  return out;
}

json body_json(const header_list& headers, const captured_body& body, bool bytes) {
  json out = {{"size", body.size}, {"truncated", body.truncated}};
  if (bytes) {
    out["captured"] = body.bytes.size();
    out["raw_base64"] = http::base64(body.bytes);
    const body_decoding decoded = decoded_body(headers, body);
    if (!decoded.error.empty()) {
      out["decode_error"] = decoded.error;
    }
    if (is_utf8(decoded.bytes)) {
      out["text"] = decoded.bytes;
    }
  }
  return out;
}

// A gRPC message's frames, and a response's status; null if not gRPC. (With
// the bodies only: the frames and the trailers are in them.)
json grpc_json(const header_list& headers, const captured_body& body) {
  const std::optional<grpc_view> g = grpc_of(headers, body);
  if (!g) {
    return nullptr;
  }
  json messages = json::array();
  for (const grpc_message& m : g->messages) {
    messages.push_back({{"length", m.length}, {"compressed", m.compressed}, {"whole", m.whole}});
  }
  json out = {{"messages", std::move(messages)}};
  if (g->status) {
    out["status"] = *g->status;
    out["status_message"] = g->message.value_or("");
  }
  return out;
}

}  // namespace

json to_json(const exchange& e, bool bodies) {
  json out = {{"id", std::to_string(e.id)},
              {"tunnel_name", e.tunnel_name},
              {"public_url", e.public_url},
              {"remote_addr", e.remote_addr},
              {"start", iso8601(e.start)},
              {"duration_us", e.duration.count()},
              {"request",
               {{"method", e.request.method},
                {"uri", e.request.target},
                {"proto", e.request.version},
                {"headers", headers_json(e.request.headers)},
                {"body", body_json(e.request.headers, e.request.body, bodies)},
                {"grpc", bodies ? grpc_json(e.request.headers, e.request.body) : nullptr}}}};
  if (e.response) {
    const captured_response& r = *e.response;
    out["response"] = {{"status", std::to_string(r.status) + " " + r.reason},
                       {"status_code", r.status},
                       {"proto", r.version},
                       {"headers", headers_json(r.headers)},
                       {"body", body_json(r.headers, r.body, bodies)},
                       {"trailers", bodies ? headers_json(chunked_trailers(r.headers, r.body))
                                           : json(nullptr)},
                       {"grpc", bodies ? grpc_json(r.headers, r.body) : nullptr}};
  } else {
    out["response"] = nullptr;
  }
  if (e.replay_of) {
    out["replay_of"] = std::to_string(*e.replay_of);
  }
  if (e.websocket) {
    out["websocket"] = {{"messages_in", e.websocket->messages_in},
                        {"messages_out", e.websocket->messages_out},
                        {"bytes_in", e.websocket->bytes_in},
                        {"bytes_out", e.websocket->bytes_out}};
  }
  if (!e.error.empty()) {
    out["error"] = e.error;
  }
  return out;
}

}  // namespace porthole::inspect
