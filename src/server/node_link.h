#pragma once
// What portholed nodes of one cluster say to each other. A node that gets a
// public connection for a name another node serves opens a connection to
// that node's node-to-node listener (mutual TLS, the cluster CA), asks it to
// take the connection (relay_request, with the claim's revision as fencing
// token), and once accepted (relay_answer) carries the public bytes as they
// are. At most one hop: a relayed connection is never relayed again.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "net/stream.h"

namespace porthole::server {

/// The first message of a relayed connection.
struct relay_request {
  std::string name;           ///< routing name: a host, or a TCP tunnel's URL
  std::string scheme;         ///< http, https or tcp
  std::int64_t revision = 0;  ///< of the claim, as the relaying node saw it
  std::string client_ip;      ///< the public client's address, for X-Forwarded-For
  std::string from_node;      ///< the relaying node's id, for logs
};

/// The owner's answer: empty error and the connection is its now.
struct relay_answer {
  std::string error;
  bool stale = false;  ///< refused because the revision is not the owner's claim (or it has none)
};

/// A message's bound: a relay request is a few hundred bytes.
inline constexpr std::size_t max_node_message = 4096;

std::string encode(const relay_request& r);
std::string encode(const relay_answer& a);
std::optional<relay_request> decode_relay_request(std::string_view json);
std::optional<relay_answer> decode_relay_answer(std::string_view json);

/// Writes one message: a 4-byte big-endian length, then the JSON text.
net::asio::awaitable<net::error_code> write_node_message(net::tls_stream& s, std::string json);

/// Reads one message, nothing past it (what follows is the relayed bytes).
net::asio::awaitable<std::tuple<net::error_code, std::string>> read_node_message(
    net::tls_stream& s);

}  // namespace porthole::server
