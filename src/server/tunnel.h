#pragma once
// A public URL served by one client, and how URLs are made.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace porthole::server {

class control_session;

/// One public URL and the client session that serves it.
struct tunnel {
  std::string url;        ///< as sent in NewTunnel and expected back in StartProxy
  std::string protocol;   ///< "http", "https" or "tcp"
  std::string host;       ///< routing name (http/https), lower case, no port
  std::string http_auth;  ///< "user:pass" required of every request, or empty
  std::weak_ptr<control_session> session;
  std::string client_id;  ///< the client the session serves
  /// Served by a client's standby connection: routed here only while the
  /// client's claim (on another node) lasts; see directory::stand_by.
  bool standby = false;
  /// Its client speaks porthole's protocol (an ngrok 1.x client does not):
  /// public HTTPS offers HTTP/2 (ALPN h2) for its name.
  bool public_h2 = false;

  /// The name it is claimed and routed by: the host of an HTTP(S) tunnel,
  /// the URL of a TCP one.
  const std::string& routing_name() const { return protocol == "tcp" ? url : host; }
};

/// The routing key of an HTTP tunnel: scheme and host name, no port.
inline std::string route_key(std::string_view scheme, std::string_view host) {
  std::string key(scheme);
  key += "://";
  key += host;
  return key;
}

/// On a port shared by tunnel clients and public HTTPS: true if a TLS
/// connection that sent this SNI name (lower case, "" if none) is a tunnel
/// client. The server's own name is, and so is no name at all (a client that
/// dialed an IP address); any other name is a public site.
inline bool sni_is_tunnel_client(std::string_view sni, std::string_view domain) {
  return sni.empty() || sni == domain;
}

/// "scheme://host" plus ":port" unless the port is the scheme's default.
std::string make_url(std::string_view scheme, std::string_view host, std::uint16_t port);

/// True for one DNS label as a subdomain: 1..63 letters, digits and '-',
/// not starting or ending with '-' (no dots: see hostname_policy).
bool valid_subdomain(std::string_view s);

/// True for a DNS name: dot-separated valid labels, at most 253 characters.
bool valid_hostname(std::string_view s);

/// A random subdomain of 8 lower-case hex digits.
std::string random_subdomain();

/// A random client id: 32 lower-case hex digits.
std::string random_client_id();

}  // namespace porthole::server
