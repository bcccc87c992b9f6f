#include "server/node_link.h"

#include <array>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

namespace porthole::server {

namespace asio = net::asio;

std::string encode(const relay_request& r) {
  return nlohmann::json{{"name", r.name},
                        {"scheme", r.scheme},
                        {"revision", r.revision},
                        {"client_ip", r.client_ip},
                        {"from_node", r.from_node}}
      .dump();
}

std::string encode(const relay_answer& a) {
  return nlohmann::json{{"error", a.error}, {"stale", a.stale}}.dump();
}

std::optional<relay_request> decode_relay_request(std::string_view json) {
  const auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  try {
    relay_request r{j.at("name").get<std::string>(), j.at("scheme").get<std::string>(),
                    j.at("revision").get<std::int64_t>(), j.value("client_ip", ""),
                    j.value("from_node", "")};
    if (r.name.empty() || (r.scheme != "http" && r.scheme != "https" && r.scheme != "tcp")) {
      return std::nullopt;
    }
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::optional<relay_answer> decode_relay_answer(std::string_view json) {
  const auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  try {
    return relay_answer{j.value("error", ""), j.value("stale", false)};
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

asio::awaitable<net::error_code> write_node_message(net::tls_stream& s, std::string json) {
  const auto n = static_cast<std::uint32_t>(json.size());
  std::string frame{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                    static_cast<char>(n >> 8), static_cast<char>(n)};
  frame += json;
  auto [ec, written] = co_await asio::async_write(s, asio::buffer(frame), net::use_nothrow);
  co_return ec;
}

asio::awaitable<std::tuple<net::error_code, std::string>> read_node_message(net::tls_stream& s) {
  std::array<unsigned char, 4> header{};
  auto [ec, n] = co_await asio::async_read(s, asio::buffer(header), net::use_nothrow);
  if (ec) {
    co_return std::tuple{ec, std::string()};
  }
  const std::size_t length = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                             (std::size_t{header[2]} << 8) | std::size_t{header[3]};
  if (length == 0 || length > max_node_message) {
    co_return std::tuple{net::error_code(asio::error::message_size), std::string()};
  }
  std::string body(length, '\0');
  auto [body_ec, m] = co_await asio::async_read(s, asio::buffer(body), net::use_nothrow);
  co_return std::tuple{body_ec, std::move(body)};
}

}  // namespace porthole::server
