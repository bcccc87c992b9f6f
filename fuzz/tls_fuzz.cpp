// What a TLS client sends first to a port of portholed: its ClientHello. The
// server context is the one portholed makes with development certificates,
// whose servername callback mints a leaf certificate for every SNI name under
// the domain; after the handshake the SNI name decides between the tunnel
// protocol and public HTTPS on a shared port.
//
// An input starting with 0x16 (a TLS handshake record) is the client's first
// flight as is (the seeds are ClientHellos of openssl s_client and curl).
// Any other input is an SNI name: an OpenSSL client puts it in a ClientHello
// of its own, so the name reaches the callback however odd it is.
//
// Properties: no crash; a name the server accepted comes back from
// net::server_name() lower-cased and otherwise unchanged.

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "check.h"
#include "net/tls.h"
#include "server/tunnel.h"

namespace {

namespace fs = std::filesystem;
namespace net = porthole::net;

// portholed's default domain.
constexpr std::string_view domain = "localhost";

struct ssl_deleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;

// The server context, made once from development certificates in a
// temporary directory that is removed as soon as they are loaded.
boost::asio::ssl::context make_server_context() {
  std::string dir = (fs::temp_directory_path() / "porthole-fuzz-tls-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) {
    std::abort();
  }
  const net::dev_certificates dev = net::ensure_dev_certificates(dir, std::string(domain));
  auto ctx = net::make_server_tls(dev.server_cert, dev.server_key);
  net::enable_dev_leaf_minting(ctx, dev, std::string(domain));
  fs::remove_all(dir);
  return ctx;
}

SSL_CTX* server_context() {
  static boost::asio::ssl::context ctx = make_server_context();
  return ctx.native_handle();
}

SSL_CTX* client_context() {
  static SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  return ctx;
}

struct client_hello {
  std::string bytes;
  bool has_name = false;  ///< OpenSSL accepted to send the name (1 to 255 bytes)
};

// The first flight of an OpenSSL client asked to send `name` as SNI.
client_hello client_hello_for(const std::string& name) {
  ssl_ptr client(SSL_new(client_context()));
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(client.get(), in, out);
  SSL_set_connect_state(client.get());
  client_hello hello;
  hello.has_name = SSL_set_tlsext_host_name(client.get(), name.c_str()) == 1;
  ERR_clear_error();
  SSL_do_handshake(client.get());
  char* bytes = nullptr;
  const long size = BIO_get_mem_data(out, &bytes);
  if (size > 0) {
    hello.bytes.assign(bytes, static_cast<std::size_t>(size));
  }
  return hello;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string flight;
  std::string name;  // the SNI name sent, if any
  if (!in.empty() && in.front() == '\x16') {
    flight = in;
  } else {
    client_hello hello = client_hello_for(std::string(in));
    flight = std::move(hello.bytes);
    if (hello.has_name) {
      name = std::string(in.substr(0, in.find('\0')));  // as SSL_set_tlsext_host_name reads it
    }
  }

  ssl_ptr server(SSL_new(server_context()));
  FUZZ_CHECK(server != nullptr);
  BIO* rbio = BIO_new_mem_buf(flight.data(), static_cast<int>(flight.size()));
  BIO_set_mem_eof_return(rbio, -1);  // the rest of the flight has not arrived yet
  SSL_set_bio(server.get(), rbio, BIO_new(BIO_s_mem()));
  SSL_set_accept_state(server.get());
  const int rc = SSL_do_handshake(server.get());
  const int status = SSL_get_error(server.get(), rc);

  const std::string sni = net::server_name(server.get());
  FUZZ_CHECK(sni == ascii_lower(sni));
  if (!name.empty() && status == SSL_ERROR_WANT_READ) {
    // The server took the hello and waits for the client's next flight.
    FUZZ_CHECK(sni == ascii_lower(name));
  }
  const bool tunnel = porthole::server::sni_is_tunnel_client(sni, domain);
  FUZZ_CHECK(tunnel == (sni.empty() || sni == domain));
  ERR_clear_error();
  return 0;
}
