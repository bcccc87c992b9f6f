#pragma once
// TLS contexts for both ends of the tunnel and the public HTTPS listener:
// TLS 1.2 and 1.3 only, forward-secret cipher suites only.

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::net {

/// A server context presenting the PEM certificate chain and key in these
/// files. Throws std::runtime_error naming the file and OpenSSL's reason.
boost::asio::ssl::context make_server_tls(const std::filesystem::path& cert_chain,
                                          const std::filesystem::path& private_key);

/// A client context that verifies the server's certificate: against the CA
/// certificates in `trust_ca` (PEM) if given, else the system's roots. The
/// caller sets the host name to verify on each stream (see verify_host()).
boost::asio::ssl::context make_client_tls(const std::optional<std::filesystem::path>& trust_ca);

/// The two ends of a link between portholed nodes: each presents its node
/// certificate and accepts only a peer whose certificate `cluster_ca` issued
/// (mutual TLS). Throws std::runtime_error naming the file at fault.
boost::asio::ssl::context make_node_server_tls(const std::filesystem::path& cluster_ca,
                                               const std::filesystem::path& cert,
                                               const std::filesystem::path& key);
boost::asio::ssl::context make_node_client_tls(const std::filesystem::path& cluster_ca,
                                               const std::filesystem::path& cert,
                                               const std::filesystem::path& key);

/// The last TLS session with each peer of a client context, so that the next
/// connection to the same peer resumes it instead of a full handshake.
/// TLS 1.3 tickets arrive after the handshake and OpenSSL hands them to a
/// callback, which this installs on the context. Single-threaded.
class tls_session_cache {
 public:
  explicit tls_session_cache(boost::asio::ssl::context& ctx);
  ~tls_session_cache();
  tls_session_cache(const tls_session_cache&) = delete;
  tls_session_cache& operator=(const tls_session_cache&) = delete;

  /// Before a handshake: resume the last session with `peer` if there is
  /// one, and keep the sessions this connection is given under `peer`.
  void prepare(SSL* ssl, const std::string& peer);

 private:
  static int on_new_session(SSL* ssl, SSL_SESSION* session);
  SSL_CTX* ctx_;
  std::map<std::string, std::shared_ptr<SSL_SESSION>, std::less<>> sessions_;
};

/// Files of the development certificate authority and the server certificate
/// it issued.
struct dev_certificates {
  std::filesystem::path ca_cert;      ///< what clients must trust (--trust-ca)
  std::filesystem::path server_cert;  ///< chain for `domain`, `*.domain`, 127.0.0.1 and ::1
  std::filesystem::path server_key;
  std::filesystem::path ca_key;  ///< the CA's private key, for enable_dev_leaf_minting()
};

/// Where ensure_dev_certificates() keeps the development CA's certificate
/// in `state_dir` (what clients must trust).
std::filesystem::path dev_ca_certificate(const std::filesystem::path& state_dir);

/// Creates, once, in `state_dir` a private CA and a server certificate for
/// `domain` (and `extra_ips`, IP addresses beside 127.0.0.1 and ::1 that
/// clients dial); later calls reuse the files (a new server certificate is
/// issued if the names changed or it is near expiry). Throws std::runtime_error.
dev_certificates ensure_dev_certificates(const std::filesystem::path& state_dir,
                                         const std::string& domain,
                                         const std::vector<std::string>& extra_ips = {});

/// Makes a server context answer every SNI name under `domain` (`domain`
/// itself and any `x.y.domain`) with a leaf certificate issued on the fly by
/// the development CA in `dev`, cached for the next handshakes (at most 1000
/// names, least recently used dropped). Needed because OpenSSL and curl refuse
/// a wildcard directly under a one-label name such as `*.localhost`, the
/// default development domain. Other names, and clients that send no SNI, get
/// the context's own certificate. Replaces any servername callback of `ctx`.
/// Throws std::runtime_error if the CA or server key cannot be loaded.
void enable_dev_leaf_minting(boost::asio::ssl::context& ctx, const dev_certificates& dev,
                             const std::string& domain);

/// Configures the native SSL handle of a client stream to send `host` as SNI
/// (unless it is an IP address) and to verify the certificate against it.
/// Throws std::invalid_argument if `host` cannot be a TLS host name.
void verify_host(SSL* ssl, const std::string& host);

/// The SNI name a client sent, lower-cased; empty if none.
std::string server_name(SSL* ssl);

/// Makes a server context answer ALPN: "h2" when the client offers it and
/// `h2_for(sni)` says yes, else "http/1.1" when offered; a client that offers
/// neither (a tunnel client) gets no ALPN answer and its handshake goes on.
/// `h2_for` must outlive the context and is called in the handshake.
void offer_h2_and_http1(boost::asio::ssl::context& ctx,
                        const std::function<bool(std::string_view)>* h2_for);

/// The protocol ALPN agreed on ("h2", "http/1.1"), or empty.
std::string alpn_protocol(SSL* ssl);

}  // namespace porthole::net
