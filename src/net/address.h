#pragma once
// Host and port strings as people type them: "host:port", ":port", "[::1]:port".

#include <string>
#include <string_view>

#include "net/stream.h"

namespace porthole::net {

struct host_port {
  std::string host;  ///< without brackets; empty for "all interfaces"
  std::string port;
};

/// Splits "host:port", ":port", "[v6]:port" or, if default_port is given, a
/// bare "host". Throws std::invalid_argument naming what is wrong.
host_port split_host_port(std::string_view text, std::string_view default_port = {});

/// The endpoint to bind for a listen address; an empty host binds all
/// interfaces (IPv6 and IPv4). Throws std::invalid_argument for a host that
/// is not an IP address ("localhost" is taken as 127.0.0.1).
tcp::endpoint listen_endpoint(const host_port& hp);

/// Opens, binds and listens; throws std::runtime_error naming the address
/// ("cannot listen on 127.0.0.1:80: Address already in use").
tcp::acceptor bind_acceptor(const asio::any_io_executor& ex, const tcp::endpoint& ep,
                            std::string_view what);

}  // namespace porthole::net
