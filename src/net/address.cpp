#include "net/address.h"

#include <boost/asio/ip/v6_only.hpp>
#include <charconv>
#include <stdexcept>

namespace porthole::net {

std::string to_string(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  std::string s;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    s = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6()).to_string();
  } else if (addr.is_v6()) {
    s = "[" + addr.to_string() + "]";
  } else {
    s = addr.to_string();
  }
  return s + ":" + std::to_string(ep.port());
}

namespace {

void check_port(std::string_view text, std::string_view port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    throw std::invalid_argument("invalid port in '" + std::string(text) + "'");
  }
}

}  // namespace

host_port split_host_port(std::string_view text, std::string_view default_port) {
  host_port hp;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      throw std::invalid_argument("missing ']' in '" + std::string(text) + "'");
    }
    hp.host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty() && !default_port.empty()) {
      hp.port = default_port;
    } else if (!rest.starts_with(':')) {
      throw std::invalid_argument("expected ':port' after ']' in '" + std::string(text) + "'");
    } else {
      hp.port = rest.substr(1);
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (default_port.empty()) {
        throw std::invalid_argument("'" + std::string(text) + "' has no port (expected host:port)");
      }
      hp.host = text;
      hp.port = default_port;
    } else {
      if (text.find(':') != colon) {
        throw std::invalid_argument("put IPv6 addresses in brackets: '[" +
                                    std::string(text.substr(0, colon)) + "]:port'");
      }
      hp.host = text.substr(0, colon);
      hp.port = text.substr(colon + 1);
    }
  }
  check_port(text, hp.port);
  return hp;
}

tcp::endpoint listen_endpoint(const host_port& hp) {
  const auto port = static_cast<unsigned short>(std::stoi(hp.port));
  if (hp.host.empty() || hp.host == "*") {
    return {asio::ip::address_v6::any(), port};
  }
  if (hp.host == "localhost") {
    return {asio::ip::address_v4::loopback(), port};
  }
  error_code ec;
  auto addr = asio::ip::make_address(hp.host, ec);
  if (ec) {
    throw std::invalid_argument("listen address '" + hp.host + "' is not an IP address");
  }
  return {addr, port};
}

tcp::acceptor bind_acceptor(const asio::any_io_executor& ex, const tcp::endpoint& ep,
                            std::string_view what) {
  tcp::acceptor acceptor(ex);
  error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) {
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (ep.address().is_v6() && ep.address().is_unspecified()) {
      acceptor.set_option(asio::ip::v6_only(false), ec);
    }
    ec.clear();
    acceptor.bind(ep, ec);
  }
  if (!ec) {
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("cannot listen for " + std::string(what) + " on " + to_string(ep) +
                             ": " + ec.message());
  }
  return acceptor;
}

}  // namespace porthole::net
