// parse_cluster_url: the --cluster URL, etcd://host:port[,host:port...].

#include <boost/asio/ip/address.hpp>
#include <stdexcept>

#include "cluster/etcd_client.h"

namespace porthole::cluster {
namespace {

constexpr std::string_view default_port = "2379";

[[noreturn]] void refuse(std::string_view url, const std::string& what) {
  throw std::runtime_error("\"" + std::string(url) + "\": " + what);
}

bool is_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

bool is_port_number(std::string_view port) {
  if (!is_digits(port) || port.size() > 5) {
    return false;
  }
  unsigned value = 0;
  for (const char c : port) {
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value >= 1 && value <= 65535;
}

// A host name or IPv4 address: goes into a Host field and a TLS name check.
bool is_plain_host(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

etcd_endpoint parse_member(std::string_view url, std::string_view member) {
  etcd_endpoint ep;
  std::string_view port;
  bool has_port = false;
  if (member.starts_with('[')) {
    const std::size_t close = member.find(']');
    if (close == std::string_view::npos) {
      refuse(url, "unterminated [IPv6 address] in \"" + std::string(member) + "\"");
    }
    ep.host = std::string(member.substr(1, close - 1));
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(ep.host, ec);
    if (ec) {
      refuse(url, "\"" + ep.host + "\" is not an IPv6 address");
    }
    const std::string_view after = member.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) {
        refuse(url, "unexpected \"" + std::string(after) + "\" after ]");
      }
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t colon = member.find(':');
    if (colon != std::string_view::npos && member.find(':', colon + 1) != std::string_view::npos) {
      refuse(url, "an IPv6 address must be in brackets: \"" + std::string(member) + "\"");
    }
    ep.host = std::string(member.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = member.substr(colon + 1);
      has_port = true;
    }
    if (ep.host.empty()) {
      refuse(url, "no host in \"" + std::string(member) + "\"");
    }
    if (!is_plain_host(ep.host)) {
      refuse(url, "\"" + ep.host + "\" is not a host name or address");
    }
  }
  if (has_port && port.empty()) {
    refuse(url, "empty port in \"" + std::string(member) + "\"");
  }
  if (has_port && !is_digits(port)) {
    refuse(url, "port \"" + std::string(port) + "\" is not a number");
  }
  if (has_port && !is_port_number(port)) {
    refuse(url, "port " + std::string(port) + " is out of range (1 to 65535)");
  }
  ep.port = std::string(has_port ? port : default_port);
  return ep;
}

}  // namespace

etcd_options parse_cluster_url(std::string_view url) {
  etcd_options options;
  std::string_view rest = url;
  if (rest.starts_with("etcd://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("etcds://")) {
    options.tls = true;
    rest.remove_prefix(8);
  } else {
    refuse(url, "the scheme must be etcd:// (plain) or etcds:// (TLS)");
  }
  if (rest.ends_with('/')) {
    rest.remove_suffix(1);
  }
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    refuse(url, "only host:port members, separated by commas (no path, query or user)");
  }
  if (rest.empty()) {
    refuse(url, "no member (host:port)");
  }
  while (true) {
    const std::size_t comma = rest.find(',');
    const std::string_view member = rest.substr(0, comma);
    if (member.empty()) {
      refuse(url, "an empty member between commas");
    }
    options.endpoints.push_back(parse_member(url, member));
    if (comma == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(comma + 1);
  }
  return options;
}

}  // namespace porthole::cluster
