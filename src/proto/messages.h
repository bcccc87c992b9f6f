#pragma once
// The messages of the ngrok 1.x protocol and porthole's negotiated extensions.
// Pure: JSON in, structs out, and back.

#include <boost/system/result.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <string_view>
#include <variant>
#include <vector>

namespace porthole::proto {

/// Protocol version every ngrok 1.x peer sends and expects.
inline constexpr std::string_view protocol_version = "2";
/// The "major.minor" version porthole announces, that of ngrok 1.7.
inline constexpr std::string_view mm_version = "1.7";

/// porthole's extensions, carried in the extra key "Porthole" of Auth and
/// AuthResp. An ngrok 1.7 peer ignores the key; a porthole peer that does not
/// receive it knows it talks to ngrok 1.7 and uses only the base protocol.
struct extensions {
  std::string version;           ///< porthole version of the sender
  std::optional<int> pool_size;  ///< proxy connections the client wants pooled / the server grants
  std::vector<std::string> features;  ///< names of optional features the sender supports
  /// AuthResp of a cluster node: where the client may connect if this node
  /// goes ("host:port" of the other nodes' tunnel listeners; at most 64).
  std::vector<std::string> nodes{};
  /// AuthResp of a cluster node: this node's own tunnel listener
  /// ("host:port"), where the client's multiplexed and proxy connections go
  /// so that they reach the node of its control connection even when the
  /// address it dialled spreads connections over several nodes.
  std::string node{};
  /// Auth of a client's second control connection (extension "standby"): it
  /// stands by on another node of the cluster than the client's main one,
  /// serving the same tunnels there, and takes them over on Promote.
  bool standby = false;

  bool operator==(const extensions&) const = default;
};

struct auth {
  std::string version{protocol_version};
  std::string mm_version{proto::mm_version};
  std::string user;  ///< the authtoken
  std::string password;
  std::string os;
  std::string arch;
  std::string client_id;  ///< empty on first connect, the previous id on reconnect
  std::optional<extensions> ext;

  bool operator==(const auth&) const = default;
};

struct auth_resp {
  std::string version;
  std::string mm_version;
  std::string client_id;
  std::string error;
  std::optional<extensions> ext;

  bool operator==(const auth_resp&) const = default;
};

struct req_tunnel {
  std::string req_id;
  std::string protocol;  ///< "http", "https", "tcp", or several joined by '+'
  std::string hostname;
  std::string subdomain;
  std::string http_auth;  ///< "user:pass" or empty
  std::uint16_t remote_port = 0;

  bool operator==(const req_tunnel&) const = default;
};

struct new_tunnel {
  std::string req_id;
  std::string url;
  std::string protocol;
  std::string error;

  bool operator==(const new_tunnel&) const = default;
};

struct req_proxy {
  bool operator==(const req_proxy&) const = default;
};

struct reg_proxy {
  std::string client_id;

  bool operator==(const reg_proxy&) const = default;
};

/// Extension "mux": the first message of the client's multiplexed connection.
/// Sent only to a server that granted the feature; after it the connection
/// carries mux frames (src/mux/frame.h) instead of messages.
struct reg_mux {
  std::string client_id;

  bool operator==(const reg_mux&) const = default;
};

/// Extension "close_tunnel": the client no longer wants this tunnel (a
/// reloaded config file dropped or changed it). The server stops routing the
/// URL to the client and frees it at once; there is no reply.
struct close_tunnel {
  std::string url;

  bool operator==(const close_tunnel&) const = default;
};

/// Extension "standby": sent on a standby connection once the client's main
/// connection is lost; the node claims the client's tunnels and the
/// connection becomes its main one. A node that cannot claim them all closes
/// the connection (the client then connects afresh).
struct promote {
  bool operator==(const promote&) const = default;
};

struct start_proxy {
  start_proxy() = default;
  start_proxy(std::string u, std::string addr, std::string p = {})
      : url(std::move(u)), client_addr(std::move(addr)), proto(std::move(p)) {}

  std::string url;
  std::string client_addr;
  /// "HTTP/2" when the public request came over HTTP/2; only on a stream of
  /// a client that negotiated "stream_windows" (never to an ngrok client).
  std::string proto;

  bool operator==(const start_proxy&) const = default;
};

struct ping {
  bool operator==(const ping&) const = default;
};

struct pong {
  bool operator==(const pong&) const = default;
};

/// The feature name of the multiplexed connection extension.
inline constexpr std::string_view feature_mux = "mux";
/// The feature name of the CloseTunnel message.
inline constexpr std::string_view feature_close_tunnel = "close_tunnel";
/// The feature name of a second, standby control connection to another node
/// of a cluster (granted only by a cluster node, and only with "mux").
inline constexpr std::string_view feature_standby = "standby";
/// The feature name of several multiplexed connections per client (with
/// "mux"): each RegMux adds one, up to max_mux_connections, and the server
/// spreads new streams over them.
inline constexpr std::string_view feature_muxes = "muxes";
inline constexpr std::size_t max_mux_connections = 16;
/// The feature name of streams with windows of their own (with "mux"): the
/// server may open a stream with a smaller window than the connection's
/// (an HTTP/2 request's, whose public reader may stall), said in the OPEN
/// frame's flags (mux/frame.h).
inline constexpr std::string_view feature_stream_windows = "stream_windows";

/// How a cluster node's NewTunnel error starts when it cannot claim names
/// now (etcd unreachable): a porthole client asks again later instead of
/// giving up; other clients read it as a refusal.
inline constexpr std::string_view registry_unavailable = "The cluster registry is unavailable";

/// Any message of the protocol.
using message = std::variant<auth, auth_resp, req_tunnel, new_tunnel, req_proxy, reg_proxy,
                             start_proxy, ping, pong, reg_mux, close_tunnel, promote>;

/// The wire name of a message's type ("Auth", "NewTunnel", ...).
std::string_view type_name(const message& m);

/// Parses a frame body. Keys are matched case-insensitively and unknown keys
/// are ignored, as Go's decoder does; type names are case-sensitive.
boost::system::result<message> decode(std::string_view json);

/// Serialises a message with every field present, as an ngrok 1.7 peer expects.
std::string encode(const message& m);

/// decode() of a whole frame body is done by the caller; this frames encode().
std::string encode_framed(const message& m);

/// StartProxy, the message of every public connection, without a JSON
/// document in between: the same bytes as encode(), and decode()'s result
/// for those bytes. decode_start_proxy() reads only the shape
/// encode_start_proxy() writes (no escapes, keys in that order) and gives
/// nothing for any other text, which decode() then reads.
std::string encode_start_proxy(const start_proxy& m);
std::optional<start_proxy> decode_start_proxy(std::string_view json);

}  // namespace porthole::proto
