#include "http/h2_outgoing.h"

#include <algorithm>
#include <cstring>

#include "http/ascii.h"

namespace porthole::http {

namespace {

// Taken bytes are dropped from the front once this many pile up.
constexpr std::size_t compact_after = 64 * 1024;

ssize_t read_body(nghttp2_session* session, std::int32_t, std::uint8_t* buf, std::size_t length,
                  std::uint32_t* data_flags, nghttp2_data_source* source, void*) {
  auto& body = *static_cast<h2_outgoing_body*>(source->ptr);
  const std::size_t n = std::min(length, body.pending());
  std::memcpy(buf, body.bytes.data() + body.sent, n);
  body.sent += n;
  if (body.sent == body.bytes.size()) {
    body.bytes.clear();
    body.sent = 0;
  } else if (body.sent > compact_after) {
    body.bytes.erase(0, body.sent);
    body.sent = 0;
  }
  if (n > 0 && body.on_taken) {
    body.on_taken();
  }
  if (body.pending() == 0 && body.ended) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!body.trailers.empty()) {
      h2_header_list nva;
      for (const field& f : body.trailers) {
        nva.add(f.name, f.value);
      }
      if (nghttp2_submit_trailer(session, body.stream_id, nva.data(), nva.size()) == 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    body.deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace

void h2_header_list::add(std::string_view name, std::string_view value) {
  nva_.push_back({const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
                  const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())),
                  name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
}

nghttp2_data_provider h2_outgoing_body::provider() {
  nghttp2_data_provider p;
  p.source.ptr = this;
  p.read_callback = &read_body;
  return p;
}

bool h2_outgoing_body::resume(nghttp2_session* session) {
  if (!deferred || (pending() == 0 && !ended)) {
    return false;
  }
  deferred = false;
  nghttp2_session_resume_data(session, stream_id);
  return true;
}

bool take_output(nghttp2_session* session, std::string& out, std::size_t limit) {
  while (out.size() < limit) {
    const std::uint8_t* data = nullptr;
    const auto n = nghttp2_session_mem_send(session, &data);
    if (n <= 0) {
      return n == 0;
    }
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  return true;
}

std::string lower_case(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = ascii_lower(c);
  }
  return out;
}

}  // namespace porthole::http
