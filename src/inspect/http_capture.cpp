#include "inspect/http_capture.h"

#include <brotli/decode.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <climits>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

namespace porthole::inspect {
namespace {

using sys_clock = std::chrono::system_clock;

std::string version_text(unsigned version) {
  // Two messages per exchange: the usual versions without building them.
  switch (version) {
    case 11:
      return "HTTP/1.1";
    case 10:
      return "HTTP/1.0";
    default:
      return "HTTP/" + std::to_string(version / 10) + "." + std::to_string(version % 10);
  }
}

header_list to_headers(const std::vector<http::field>& fields) {
  header_list headers;
  headers.reserve(fields.size());
  for (const auto& f : fields) {
    headers.emplace_back(f.name, f.value);
  }
  return headers;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(
      a, b, [](unsigned char x, unsigned char y) { return std::tolower(x) == std::tolower(y); });
}

/// Keeps what fits under `limit` and counts the rest.
void keep(captured_body& body, std::string_view bytes, std::size_t limit) {
  body.size += bytes.size();
  if (body.bytes.size() < limit) {
    body.bytes.append(bytes.substr(0, limit - body.bytes.size()));
  }
  body.truncated = body.bytes.size() < body.size;
}

/// Holds `rest`, the unparsed end of an input that was either `held` itself
/// or bytes parsed where they lay (then `held` was empty), for the next call.
void hold(std::string& held, std::string_view rest) {
  if (rest.empty()) {
    held.clear();
  } else if (held.empty()) {
    held.assign(rest);
  } else {
    held.erase(0, static_cast<std::size_t>(rest.data() - held.data()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// http_capture

http_capture::http_capture(http_capture_options options, sink on_exchange)
    : options_(std::move(options)), on_exchange_(std::move(on_exchange)) {}

sys_clock::time_point http_capture::now() {
  if (!now_) {
    now_ = options_.clock ? options_.clock() : sys_clock::now();
  }
  return *now_;
}

void http_capture::on_request_bytes(std::string_view bytes) noexcept {
  if (stopped_ || bytes.empty()) {
    return;
  }
  now_.reset();
  try {
    if (switched_) {
      websocket_.bytes_in += bytes.size();
      if (count_frames_) {
        frames_in_.feed(bytes);
      }
      return;
    }
    if (awaiting_upgrade_) {
      request_bytes_.append(bytes);
      if (request_bytes_.size() > options_.upgrade_hold_limit) {
        stop("too many request bytes before the upgrade's response");
      }
      return;
    }
    if (request_bytes_.empty()) {
      parse_requests(bytes);
    } else {
      request_bytes_.append(bytes);
      parse_requests(request_bytes_);
    }
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::on_response_bytes(std::string_view bytes) noexcept {
  if (stopped_ || bytes.empty()) {
    return;
  }
  now_.reset();
  try {
    if (switched_) {
      websocket_.bytes_out += bytes.size();
      if (count_frames_) {
        frames_out_.feed(bytes);
      }
      return;
    }
    if (response_bytes_.empty()) {
      parse_responses(bytes);
    } else {
      response_bytes_.append(bytes);
      parse_responses(response_bytes_);
    }
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::on_close() noexcept {
  if (stopped_) {
    return;
  }
  now_.reset();
  try {
    if (reading_response_ && responses_.body_until_close()) {
      complete_response();
    }
    while (!pending_.empty()) {
      pending_exchange p = std::move(pending_.front());
      pending_.pop_front();
      if (p.ex.websocket) {
        websocket_.messages_in = frames_in_.messages;
        websocket_.messages_out = frames_out_.messages;
        p.ex.websocket = websocket_;
      } else if (!p.response_done) {
        p.ex.duration = std::chrono::duration_cast<std::chrono::microseconds>(now() - p.started);
        p.ex.error = p.ex.response ? "connection closed before the response was complete"
                                   : "connection closed before the response";
      } else if (!p.request_done) {
        p.ex.error = "connection closed before the request was complete";
      }
      emit(std::move(p.ex));
    }
  } catch (const std::exception& e) {
    spdlog::debug("capture of {}: {}", options_.remote_addr, e.what());
  }
  stopped_ = true;
  pending_.clear();
  request_bytes_ = {};
  response_bytes_ = {};
}

void http_capture::framed_request_head(const http::request_head& head) noexcept {
  if (stopped_) {
    return;
  }
  now_.reset();
  try {
    start_exchange(head);
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::framed_request_body(std::string_view bytes) noexcept {
  if (stopped_ || !reading_request_ || pending_.empty()) {
    return;
  }
  try {
    keep(pending_.back().ex.request.body, bytes, options_.body_limit);
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::framed_request_end() noexcept {
  if (stopped_ || !reading_request_ || pending_.empty()) {
    return;
  }
  now_.reset();
  try {
    reading_request_ = false;
    pending_.back().request_done = true;
    emit_ready();
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::framed_response_head(const http::response_head& head) noexcept {
  if (stopped_) {
    return;
  }
  now_.reset();
  try {
    start_response(head);
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::framed_response_body(std::string_view bytes) noexcept {
  if (stopped_ || !reading_response_) {
    return;
  }
  try {
    keep(answered()->ex.response->body, bytes, options_.body_limit);
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::framed_response_end() noexcept {
  if (stopped_) {
    return;
  }
  now_.reset();
  try {
    if (response_is_interim_) {
      response_is_interim_ = false;
    } else if (reading_response_) {
      complete_response();
    }
  } catch (const std::exception& e) {
    stop(e.what());
  }
}

void http_capture::abandon(std::string_view why) noexcept {
  stop(why);
}

void http_capture::parse_requests(std::string_view input) {
  while (!stopped_ && !awaiting_upgrade_ && !switched_) {
    if (!reading_request_ && !request_began_ && !input.empty()) {
      request_began_ = now();
    }
    const http::parse_result r = requests_.parse(input);
    if (r.error) {
      stop("request is not valid HTTP: " + r.error.message());
      return;
    }
    if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
      break;
    }
    if (r.head_complete) {
      on_request_head();
      if (stopped_) {
        return;
      }
    } else if (reading_request_) {
      keep(pending_.back().ex.request.body, input.substr(0, r.consumed), options_.body_limit);
    }
    input.remove_prefix(r.consumed);
    if (r.message_complete && reading_request_) {
      reading_request_ = false;
      pending_exchange& p = pending_.back();
      p.request_done = true;
      // Bytes after an upgrade request are HTTP only if the upgrade is refused.
      awaiting_upgrade_ = p.upgrade && !p.response_done;
      emit_ready();
    }
  }
  if (!stopped_) {
    hold(request_bytes_, input);
  }
}

void http_capture::on_request_head() {
  const http::request_head& head = requests_.head();
  if (start_exchange(head)) {
    responses_.expect(head.method);
  }
}

bool http_capture::start_exchange(const http::request_head& head) {
  if (pending_.size() >= options_.max_pending) {
    stop("too many pipelined requests");
    return false;
  }
  pending_exchange p;
  p.started = request_began_.value_or(now());
  request_began_.reset();
  p.upgrade = head.upgrade || head.method == "CONNECT";
  p.ex.tunnel_name = options_.tunnel_name;
  p.ex.public_url = options_.public_url;
  p.ex.remote_addr = options_.remote_addr;
  p.ex.start = std::chrono::floor<std::chrono::milliseconds>(p.started);
  p.ex.request.method = head.method;
  p.ex.request.target = head.target;
  p.ex.request.version =
      options_.public_version.empty() ? version_text(head.version) : options_.public_version;
  p.ex.request.headers = to_headers(head.fields);
  pending_.push_back(std::move(p));
  reading_request_ = true;
  return true;
}

http_capture::pending_exchange* http_capture::answered() {
  for (auto& p : pending_) {
    if (!p.response_done) {
      return &p;
    }
  }
  return nullptr;
}

void http_capture::parse_responses(std::string_view input) {
  while (!stopped_ && !switched_) {
    const http::parse_result r = responses_.parse(input);
    if (r.error) {
      stop("response is not valid HTTP: " + r.error.message());
      return;
    }
    if (r.consumed == 0 && !r.head_complete && !r.message_complete) {
      break;
    }
    if (r.head_complete) {
      on_response_head();
      if (stopped_) {
        return;
      }
    } else if (reading_response_) {
      keep(answered()->ex.response->body, input.substr(0, r.consumed), options_.body_limit);
    }
    input.remove_prefix(r.consumed);
    if (r.message_complete) {
      if (response_is_interim_) {
        response_is_interim_ = false;
      } else if (reading_response_) {
        complete_response();
      }
    }
  }
  if (stopped_) {
    return;
  }
  if (switched_ && !input.empty()) {
    // Bytes that came with the 101 belong to the new protocol.
    websocket_.bytes_out += input.size();
    if (count_frames_) {
      frames_out_.feed(input);
    }
    input = {};
  }
  hold(response_bytes_, input);
}

void http_capture::on_response_head() {
  start_response(responses_.head());
}

void http_capture::start_response(const http::response_head& head) {
  pending_exchange* p = answered();
  if (p == nullptr) {
    stop("a response came without a request");
    return;
  }
  if (head.status >= 100 && head.status < 200 && head.status != 101) {
    response_is_interim_ = true;
    return;
  }
  captured_response response;
  response.status = static_cast<int>(head.status);
  response.reason = head.reason;
  response.version =
      options_.public_version.empty() ? version_text(head.version) : options_.public_version;
  response.headers = to_headers(head.fields);
  p->ex.response = std::move(response);
  reading_response_ = true;
}

void http_capture::complete_response() {
  reading_response_ = false;
  pending_exchange* p = answered();
  p->response_done = true;
  p->ex.duration = std::chrono::duration_cast<std::chrono::microseconds>(now() - p->started);
  if (responses_.switched_protocols()) {
    switch_protocols(*p);
    return;
  }
  const bool upgrade_refused = awaiting_upgrade_ && p == &pending_.back();
  emit_ready();
  if (upgrade_refused) {
    awaiting_upgrade_ = false;
    parse_requests(request_bytes_);
  }
}

void http_capture::switch_protocols(pending_exchange& p) {
  switched_ = true;
  awaiting_upgrade_ = false;
  p.ex.websocket = websocket_traffic{};
  const auto upgrade = std::ranges::find_if(
      p.ex.response->headers, [](const auto& h) { return iequals(h.first, "Upgrade"); });
  count_frames_ = p.ex.response->status == 101 && upgrade != p.ex.response->headers.end() &&
                  iequals(upgrade->second, "websocket");
  // Request bytes held back since the upgrade request are the new protocol's.
  if (!request_bytes_.empty()) {
    websocket_.bytes_in += request_bytes_.size();
    if (count_frames_) {
      frames_in_.feed(request_bytes_);
    }
    request_bytes_ = {};
  }
  requests_.release();
}

void http_capture::emit_ready() {
  // In request order; an upgraded exchange waits for on_close() and its counts.
  while (!pending_.empty() && pending_.front().request_done && pending_.front().response_done &&
         !pending_.front().ex.websocket) {
    exchange ex = std::move(pending_.front().ex);
    pending_.pop_front();
    emit(std::move(ex));
  }
}

void http_capture::emit(exchange ex) {
  try {
    on_exchange_(std::move(ex));
  } catch (const std::exception& e) {
    spdlog::warn("capture of {}: storing an exchange failed: {}", options_.remote_addr, e.what());
  } catch (...) {
    spdlog::warn("capture of {}: storing an exchange failed", options_.remote_addr);
  }
}

void http_capture::stop(std::string_view why) {
  if (stopped_) {
    return;
  }
  spdlog::debug("capture of {} stopped: {}", options_.remote_addr, why);
  stopped_ = true;
  // Requests that arrived whole are shown, with the reason nothing more is.
  for (auto& p : pending_) {
    if (p.request_done) {
      if (p.ex.websocket) {
        p.ex.websocket = websocket_;
        p.ex.websocket->messages_in = frames_in_.messages;
        p.ex.websocket->messages_out = frames_out_.messages;
      }
      p.ex.error = "capture stopped: " + std::string{why};
      emit(std::move(p.ex));
    }
  }
  pending_.clear();
  request_bytes_ = {};
  response_bytes_ = {};
  requests_.release();
}

void http_capture::frame_counter::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    if (payload_left > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left, bytes.size()));
      payload_left -= n;
      bytes.remove_prefix(n);
      continue;
    }
    header[header_have++] = static_cast<std::uint8_t>(bytes.front());
    bytes.remove_prefix(1);
    if (header_have < 2) {
      continue;
    }
    const std::uint8_t len7 = header[1] & 0x7f;
    const std::size_t length_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const std::size_t need = 2 + length_bytes + ((header[1] & 0x80) ? 4 : 0);
    if (header_have < need) {
      continue;
    }
    std::uint64_t length = len7;
    if (length_bytes > 0) {
      length = 0;
      for (std::size_t i = 0; i < length_bytes; ++i) {
        length = (length << 8) | header[2 + i];
      }
    }
    const bool fin = (header[0] & 0x80) != 0;
    const std::uint8_t opcode = header[0] & 0x0f;
    // A FIN data frame (text, binary or the last continuation) ends a message;
    // control frames (8 and up) are not messages.
    if (fin && opcode < 8) {
      ++messages;
    }
    payload_left = length;
    header_have = 0;
  }
}

// ---------------------------------------------------------------------------
// decoded_body

namespace {

struct step {
  std::string bytes;
  std::string error;
  /// The input stopped mid-stream: `bytes` is a good prefix of the output.
  bool ended_early = false;
};

std::vector<std::string> codings(const header_list& headers, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [field, value] : headers) {
    if (!iequals(field, name)) {
      continue;
    }
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
        item.remove_prefix(1);
      }
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
        item.remove_suffix(1);
      }
      std::string coding;
      for (const char c : item) {
        coding += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      if (!coding.empty() && coding != "identity") {
        out.push_back(std::move(coding));
      }
    }
  }
  return out;
}

std::string over_limit(std::size_t limit) {
  return "decoded body is over " + std::to_string(limit) + " bytes; cut there";
}

step dechunk(std::string_view in, std::size_t limit) {
  step out;
  std::size_t pos = 0;
  for (;;) {
    const auto eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      out.error = "chunked body ends early";
      out.ended_early = true;
      return out;
    }
    std::string_view line = in.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    std::uint64_t size = 0;
    const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    if (line.empty() || ec != std::errc{} || end != line.data() + line.size()) {
      out.error = "malformed chunk size";
      return out;
    }
    pos = eol + 2;
    if (size == 0) {
      return out;  // trailers, if any, are not part of the body
    }
    const std::size_t available = in.size() - pos;
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(size, available));
    if (out.bytes.size() + take > limit) {
      out.bytes.append(in.substr(pos, limit - out.bytes.size()));
      out.error = over_limit(limit);
      return out;
    }
    out.bytes.append(in.substr(pos, take));
    if (take < size || in.size() - (pos + take) < 2) {
      out.error = "chunked body ends early";
      out.ended_early = true;
      return out;
    }
    pos += take;
    if (in.substr(pos, 2) != "\r\n") {
      out.error = "malformed chunk: no CRLF after its data";
      return out;
    }
    pos += 2;
  }
}

/// zlib's inflate; `window_bits` picks the wrapper (gzip, zlib or raw).
step inflate_body(std::string_view in, int window_bits, std::string_view name, std::size_t limit) {
  step out;
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) {
    out.error = "cannot start the " + std::string{name} + " decoder";
    return out;
  }
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard{&zs, inflateEnd};
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  // Bodies are bounded by the capture limit, far below uInt's range.
  zs.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size(), UINT_MAX));
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer.data());
    zs.avail_out = static_cast<uInt>(buffer.size());
    const int ret = inflate(&zs, Z_NO_FLUSH);
    const std::size_t produced = buffer.size() - zs.avail_out;
    if (out.bytes.size() + produced > limit) {
      out.bytes.append(buffer.data(), limit - out.bytes.size());
      out.error = over_limit(limit);
      return out;
    }
    out.bytes.append(buffer.data(), produced);
    if (ret == Z_STREAM_END) {
      // gzip allows several members one after another.
      if (window_bits > MAX_WBITS && zs.avail_in > 0) {
        inflateReset(&zs);
        continue;
      }
      return out;
    }
    if (ret == Z_BUF_ERROR || (ret == Z_OK && zs.avail_in == 0 && zs.avail_out > 0)) {
      out.error = std::string{name} + " data ends early";
      out.ended_early = true;
      return out;
    }
    if (ret != Z_OK) {
      out.error = "not valid " + std::string{name} + " data";
      if (zs.msg != nullptr) {
        out.error += ": ";
        out.error += zs.msg;
      }
      return out;
    }
  }
}

step inflate_deflate(std::string_view in, std::size_t limit) {
  // "deflate" means zlib-wrapped, but some servers send raw deflate.
  step zlib_wrapped = inflate_body(in, MAX_WBITS, "deflate", limit);
  if (!zlib_wrapped.error.empty() && zlib_wrapped.bytes.empty()) {
    step raw = inflate_body(in, -MAX_WBITS, "deflate", limit);
    if (raw.error.empty() || !raw.bytes.empty()) {
      return raw;
    }
  }
  return zlib_wrapped;
}

step unbrotli(std::string_view in, std::size_t limit) {
  step out;
  const std::unique_ptr<BrotliDecoderState, void (*)(BrotliDecoderState*)> state{
      BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance};
  if (!state) {
    out.error = "cannot start the br decoder";
    return out;
  }
  std::size_t available_in = in.size();
  const auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
  std::array<std::uint8_t, 16 * 1024> buffer;
  for (;;) {
    std::size_t available_out = buffer.size();
    std::uint8_t* next_out = buffer.data();
    const BrotliDecoderResult ret = BrotliDecoderDecompressStream(
        state.get(), &available_in, &next_in, &available_out, &next_out, nullptr);
    const std::size_t produced = buffer.size() - available_out;
    const auto* produced_bytes = reinterpret_cast<const char*>(buffer.data());
    if (out.bytes.size() + produced > limit) {
      out.bytes.append(produced_bytes, limit - out.bytes.size());
      out.error = over_limit(limit);
      return out;
    }
    out.bytes.append(produced_bytes, produced);
    switch (ret) {
      case BROTLI_DECODER_RESULT_SUCCESS:
        return out;
      case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
        continue;
      case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
        out.error = "br data ends early";
        out.ended_early = true;
        return out;
      case BROTLI_DECODER_RESULT_ERROR:
      default:
        out.error = std::string{"not valid br data: "} +
                    BrotliDecoderErrorString(BrotliDecoderGetErrorCode(state.get()));
        return out;
    }
  }
}

step decode_one(std::string_view coding, std::string_view in, std::size_t limit) {
  if (coding == "chunked") {
    return dechunk(in, limit);
  }
  if (coding == "gzip" || coding == "x-gzip") {
    return inflate_body(in, MAX_WBITS + 16, "gzip", limit);
  }
  if (coding == "deflate") {
    return inflate_deflate(in, limit);
  }
  if (coding == "br") {
    return unbrotli(in, limit);
  }
  return {std::string{in}, "unsupported coding: " + std::string{coding}};
}

}  // namespace

body_decoding decoded_body(const header_list& headers, const captured_body& body,
                           std::size_t output_limit) {
  body_decoding out;
  std::string data = body.bytes;
  // The sender applied content codings first, then transfer codings, each
  // list in order; undo them from the last.
  std::vector<std::string> applied = codings(headers, "Content-Encoding");
  for (auto& coding : codings(headers, "Transfer-Encoding")) {
    applied.push_back(std::move(coding));
  }
  std::string error;
  for (auto it = applied.rbegin(); it != applied.rend() && !data.empty(); ++it) {
    step s = decode_one(*it, data, output_limit);
    data = std::move(s.bytes);
    if (!s.error.empty()) {
      // A cut body still decodes to a prefix through every coding.
      const bool go_on = s.ended_early && body.truncated;
      if (error.empty()) {
        error = std::move(s.error);
      }
      if (!go_on) {
        break;
      }
    }
  }
  out.bytes = std::move(data);
  if (body.truncated) {
    out.error = "body was cut at the capture limit; only its start is decoded";
    if (!error.empty()) {
      out.error += " (" + error + ")";
    }
  } else {
    out.error = std::move(error);
  }
  return out;
}

}  // namespace porthole::inspect
