#include "client/replay.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <stdexcept>

#include "http/ascii.h"
#include "inspect/http_capture.h"
#include "net/dialer.h"
#include "net/stream.h"

namespace porthole::client {
namespace {

namespace asio = net::asio;

// No bytes that would end a line or the field early.
bool is_field_value(std::string_view s) {
  for (const unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return false;
    }
  }
  return true;
}

bool is_target(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (const unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

bool has_header(const inspect::header_list& headers, std::string_view name) {
  return inspect::find_header(headers, name) != nullptr;
}

}  // namespace

std::string replay_request(const inspect::captured_request& original, const replay_edit& edit) {
  const std::string method = edit.method.value_or(original.method);
  const std::string target = edit.target.value_or(original.target);
  inspect::header_list headers = edit.headers.value_or(original.headers);
  if (!http::is_token(method)) {
    throw std::invalid_argument("method '" + method +
                                "' is not an HTTP method (letters only, e.g. GET)");
  }
  if (!is_target(target)) {
    throw std::invalid_argument("path '" + target +
                                "' is not a request target (it must not be empty or hold spaces or "
                                "control characters)");
  }
  for (const auto& [name, value] : headers) {
    if (!http::is_token(name)) {
      throw std::invalid_argument("header name '" + name + "' is not valid");
    }
    if (!is_field_value(value)) {
      throw std::invalid_argument("the value of header '" + name +
                                  "' holds a line break or another control character");
    }
  }
  if (const std::string* upgrade = inspect::find_header(headers, "upgrade")) {
    throw std::invalid_argument("this request asks to switch protocols (Upgrade: " + *upgrade +
                                "); replaying it is not supported");
  }

  std::string body;
  if (edit.body) {
    body = *edit.body;
    // The new body is sent as given: unframed, and, unless the edit set the
    // headers too, without the original's content coding.
    const bool keep_coding = edit.headers.has_value();
    std::erase_if(headers, [keep_coding](const auto& h) {
      return http::iequals(h.first, "content-length") ||
             http::iequals(h.first, "transfer-encoding") ||
             (!keep_coding && http::iequals(h.first, "content-encoding"));
    });
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      headers.emplace_back("Content-Length", std::to_string(body.size()));
    }
  } else {
    if (original.body.truncated) {
      throw std::invalid_argument(
          "the request body was cut at capture (" + std::to_string(original.body.bytes.size()) +
          " of " + std::to_string(original.body.size) +
          " bytes kept), so it cannot be sent again as it was; raise inspect_body_limit, or edit "
          "the body");
    }
    body = original.body.bytes;
    if (!body.empty() && !has_header(headers, "content-length") &&
        !has_header(headers, "transfer-encoding")) {
      headers.emplace_back("Content-Length", std::to_string(body.size()));
    }
  }

  // What the tunnel carried: HTTP/1.0 or 1.1 (an exchange whose public
  // client spoke HTTP/2 is recorded as "HTTP/2" but went over as HTTP/1.1).
  const std::string version = original.version == "HTTP/1.0" ? "HTTP/1.0" : "HTTP/1.1";
  std::string out = method + " " + target + " " + version + "\r\n";
  for (const auto& [name, value] : headers) {
    out += name + ": " + value + "\r\n";
  }
  out += "\r\n";
  out += body;
  return out;
}

asio::awaitable<replay_result> replay(std::string request_bytes, std::int64_t original_id,
                                      replay_target target) {
  const std::string local = target.local_host + ":" + target.local_port;
  auto dialed = co_await net::dial(target.local_host, target.local_port, std::nullopt,
                                   target.connect_timeout);
  if (dialed.error) {
    co_return replay_result{std::nullopt, "local service " + local + " is down: " + dialed.failure};
  }

  std::optional<inspect::exchange> answer;
  inspect::http_capture_options options;
  options.tunnel_name = target.tunnel_name;
  options.public_url = target.public_url;
  options.remote_addr = "replay";
  options.body_limit = target.body_limit;
  inspect::http_capture capture(std::move(options), [&](inspect::exchange e) {
    if (!answer) {
      answer = std::move(e);
    }
  });
  capture.on_request_bytes(request_bytes);

  boost::beast::tcp_stream stream(std::move(dialed.socket));
  stream.expires_after(target.response_timeout);
  auto [write_ec, written] =
      co_await asio::async_write(stream, asio::buffer(request_bytes), net::use_nothrow);
  net::error_code ec = write_ec;
  std::string buffer(64 * 1024, '\0');
  while (!ec && !answer) {
    auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(buffer), net::use_nothrow);
    capture.on_response_bytes(std::string_view(buffer.data(), n));
    ec = read_ec;
  }
  capture.on_close();
  if (!answer) {
    co_return replay_result{std::nullopt, "the local service " + local +
                                              " answered with something that is not HTTP" +
                                              (ec ? " (" + ec.message() + ")" : std::string())};
  }
  answer->replay_of = original_id;
  if (!answer->response && ec == boost::beast::error::timeout) {
    answer->error = "no complete response from " + local + " within " +
                    std::to_string(target.response_timeout.count() / 1000) + " s";
  }
  co_return replay_result{std::move(answer), {}};
}

}  // namespace porthole::client
