#include "inspect/grpc_view.h"

#include <charconv>
#include <string_view>

#include "http/ascii.h"
#include "inspect/http_capture.h"

namespace porthole::inspect {

bool is_grpc(const header_list& headers) {
  const std::string type = header_value(headers, "content-type");
  const std::string_view t(type);
  constexpr std::string_view grpc = "application/grpc";
  return t.size() >= grpc.size() && http::iequals(t.substr(0, grpc.size()), grpc) &&
         (t.size() == grpc.size() || t[grpc.size()] == '+' || t[grpc.size()] == ';');
}

header_list chunked_trailers(const header_list& headers, const captured_body& body) {
  if (!http::iequals(http::trim_ows(header_value(headers, "transfer-encoding")), "chunked") ||
      body.truncated) {
    return {};
  }
  const std::string_view in(body.bytes);
  std::size_t pos = 0;
  for (;;) {
    const std::size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      return {};
    }
    std::string_view line = in.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));
    std::uint64_t size = 0;
    const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    if (line.empty() || ec != std::errc{}) {
      return {};
    }
    pos = eol + 2;
    if (size == 0) {
      break;
    }
    if (size > in.size() - pos) {
      return {};
    }
    pos += static_cast<std::size_t>(size) + 2;
  }
  header_list out;
  for (;;) {
    const std::size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos || eol == pos) {
      return out;
    }
    const std::string_view line = in.substr(pos, eol - pos);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      out.emplace_back(std::string(line.substr(0, colon)),
                       std::string(http::trim_ows(line.substr(colon + 1))));
    }
    pos = eol + 2;
  }
}

std::optional<grpc_view> grpc_of(const header_list& headers, const captured_body& body) {
  if (!is_grpc(headers)) {
    return std::nullopt;
  }
  grpc_view view;
  const body_decoding decoded = decoded_body(headers, body);
  const std::string_view bytes(decoded.bytes);
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    grpc_message m;
    m.compressed = bytes[pos] != 0;
    for (std::size_t i = 1; i <= 4; ++i) {
      m.length = (m.length << 8) | static_cast<unsigned char>(bytes[pos + i]);
    }
    pos += 5;
    m.whole = m.length <= bytes.size() - pos;
    view.messages.push_back(m);
    if (!m.whole) {
      break;
    }
    pos += m.length;
  }
  // The status is in the trailers, or in the head of a trailers-only response.
  const header_list trailers = chunked_trailers(headers, body);
  for (const header_list* fields : {&trailers, &headers}) {
    if (const std::string* s = find_header(*fields, "grpc-status")) {
      view.status = *s;
      if (const std::string* m = find_header(*fields, "grpc-message")) {
        view.message = *m;
      }
      break;
    }
  }
  return view;
}

}  // namespace porthole::inspect
