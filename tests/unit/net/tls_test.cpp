#include "net/tls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "support/temporary_directory.h"

namespace porthole::net {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using asio::ip::tcp;
using boost::system::error_code;
using ::testing::HasSubstr;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Only a guard against a hung test: every exchange ends on its own first.
constexpr auto guard_time = std::chrono::seconds(20);

struct session_deleter {
  void operator()(SSL_SESSION* s) const noexcept { SSL_SESSION_free(s); }
};
using session_ptr = std::unique_ptr<SSL_SESSION, session_deleter>;

struct x509_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_deleter>;

using porthole::testing::temporary_directory;

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<x509_ptr> read_certificates(const fs::path& path) {
  std::vector<x509_ptr> certs;
  const std::string pem = file_bytes(path);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();
  return certs;
}

fs::perms permissions_of(const fs::path& path) {
  return fs::status(path).permissions() & fs::perms::mask;
}

template <typename T>
T finished(std::future<T>& future) {
  if (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    throw std::runtime_error("the exchange did not finish within the guard time");
  }
  return future.get();
}

struct server_outcome {
  error_code handshake;
  std::string sni;
};

struct client_outcome {
  error_code handshake;
  session_ptr session;
  bool resumed = false;
  x509_ptr peer_certificate;
  std::string version;
  std::string cipher;
};

// Accepts one connection, handshakes and sends one byte, so that TLS 1.3
// session tickets reach the client before its read completes.
asio::awaitable<server_outcome> serve_one(tcp::acceptor& acceptor, ssl::context& ctx) {
  server_outcome outcome;
  auto [accept_error, socket] = co_await acceptor.async_accept(use_tuple);
  if (accept_error) {
    outcome.handshake = accept_error;
    co_return outcome;
  }
  ssl::stream<tcp::socket> stream(std::move(socket), ctx);
  auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
  outcome.handshake = handshake_error;
  outcome.sni = server_name(stream.native_handle());
  if (!handshake_error) {
    co_await asio::async_write(stream, asio::buffer("k", 1), use_tuple);
    // The client's close_notify, then ours.
    char byte = 0;
    co_await asio::async_read(stream, asio::buffer(&byte, 1), use_tuple);
    co_await stream.async_shutdown(use_tuple);
  }
  co_return outcome;
}

// `host`: what to verify (and send as SNI); empty: no verify_host() at all.
asio::awaitable<client_outcome> connect_one(tcp::endpoint server, ssl::context& ctx,
                                            std::string host, SSL_SESSION* resume) {
  client_outcome outcome;
  tcp::socket socket(co_await asio::this_coro::executor);
  auto [connect_error] = co_await socket.async_connect(server, use_tuple);
  if (connect_error) {
    outcome.handshake = connect_error;
    co_return outcome;
  }
  ssl::stream<tcp::socket> stream(std::move(socket), ctx);
  if (!host.empty()) {
    verify_host(stream.native_handle(), host);
  }
  if (resume != nullptr) {
    SSL_set_session(stream.native_handle(), resume);
  }
  auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::client, use_tuple);
  outcome.handshake = handshake_error;
  if (handshake_error) {
    co_return outcome;
  }
  char byte = 0;
  co_await asio::async_read(stream, asio::buffer(&byte, 1), use_tuple);
  SSL* native = stream.native_handle();
  outcome.session.reset(SSL_get1_session(native));
  outcome.resumed = SSL_session_reused(native) == 1;
  outcome.peer_certificate.reset(SSL_get1_peer_certificate(native));
  outcome.version = SSL_get_version(native);
  outcome.cipher = SSL_get_cipher_name(native);
  // OpenSSL marks the session of a connection freed without close_notify as
  // not resumable.
  co_await stream.async_shutdown(use_tuple);
  co_return outcome;
}

struct handshake_outcome {
  server_outcome server;
  client_outcome client;
};

handshake_outcome handshake(ssl::context& server_ctx, ssl::context& client_ctx,
                            const std::string& host, SSL_SESSION* resume = nullptr) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto server = asio::co_spawn(io, serve_one(acceptor, server_ctx), asio::use_future);
  auto client = asio::co_spawn(io, connect_one(acceptor.local_endpoint(), client_ctx, host, resume),
                               asio::use_future);
  io.run_for(guard_time);
  return {finished(server), finished(client)};
}

// A client context that offers only what `configure` leaves it, for testing
// what the server refuses.
template <typename Configure>
ssl::context legacy_client(Configure configure) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  configure(ctx.native_handle());
  return ctx;
}

bool is_ssl_reason(const error_code& ec, int reason) {
  return ec.category() == asio::error::get_ssl_category() &&
         ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == reason;
}

class DevCertificates : public ::testing::Test {
 protected:
  temporary_directory dir;
  fs::path state = dir.path() / "state";
};

TEST_F(DevCertificates, AreCreatedInAPrivateStateDirectory) {
  const dev_certificates dev = ensure_dev_certificates(state, "localhost");
  EXPECT_EQ(dev.ca_cert, state / "ca.pem");
  EXPECT_EQ(dev.server_cert, state / "server.pem");
  EXPECT_EQ(dev.server_key, state / "server-key.pem");
  EXPECT_EQ(permissions_of(state), fs::perms::owner_all);
  EXPECT_EQ(permissions_of(dev.server_key), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(permissions_of(dev.ca_key), fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(DevCertificates, AreReusedOnTheNextStart) {
  const dev_certificates first = ensure_dev_certificates(state, "localhost");
  const std::string ca = file_bytes(first.ca_cert);
  const std::string server = file_bytes(first.server_cert);
  const std::string key = file_bytes(first.server_key);

  const dev_certificates second = ensure_dev_certificates(state, "localhost");

  EXPECT_EQ(file_bytes(second.ca_cert), ca);
  EXPECT_EQ(file_bytes(second.server_cert), server);
  EXPECT_EQ(file_bytes(second.server_key), key);
}

TEST_F(DevCertificates, ServerChainIsLeafForTheDomainThenTheCa) {
  const dev_certificates dev = ensure_dev_certificates(state, "localhost");
  const std::vector<x509_ptr> chain = read_certificates(dev.server_cert);
  const std::vector<x509_ptr> ca = read_certificates(dev.ca_cert);
  ASSERT_EQ(chain.size(), 2u);
  ASSERT_EQ(ca.size(), 1u);
  EXPECT_EQ(X509_cmp(chain[1].get(), ca[0].get()), 0);
  EXPECT_EQ(X509_check_ca(ca[0].get()), 1);
  X509* leaf = chain[0].get();
  EXPECT_EQ(X509_check_host(leaf, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_EQ(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ca_key(X509_get_pubkey(ca[0].get()),
                                                             &EVP_PKEY_free);
  EXPECT_EQ(X509_verify(leaf, ca_key.get()), 1);
}

TEST_F(DevCertificates, ChangedDomainReissuesTheServerCertificateButKeepsTheCa) {
  const dev_certificates first = ensure_dev_certificates(state, "localhost");
  const std::string ca = file_bytes(first.ca_cert);
  const std::string server = file_bytes(first.server_cert);

  const dev_certificates second = ensure_dev_certificates(state, "Tunnel.Example.Test");

  EXPECT_EQ(file_bytes(second.ca_cert), ca);
  EXPECT_NE(file_bytes(second.server_cert), server);
  const std::vector<x509_ptr> chain = read_certificates(second.server_cert);
  ASSERT_FALSE(chain.empty());
  EXPECT_EQ(X509_check_host(chain[0].get(), "tunnel.example.test", 0, 0, nullptr), 1);
  // Below a name of two or more labels the wildcard is honoured.
  EXPECT_EQ(X509_check_host(chain[0].get(), "abc.tunnel.example.test", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(chain[0].get(), "localhost", 0, 0, nullptr), 1);
}

TEST_F(DevCertificates, AServerCertificateWithoutItsKeyIsReissued) {
  const dev_certificates first = ensure_dev_certificates(state, "localhost");
  const std::string server = file_bytes(first.server_cert);
  fs::remove(first.server_key);

  const dev_certificates second = ensure_dev_certificates(state, "localhost");

  EXPECT_TRUE(fs::exists(second.server_key));
  EXPECT_NE(file_bytes(second.server_cert), server);
}

TEST_F(DevCertificates, AnUnreadableCaIsAnErrorNotReplaced) {
  fs::create_directories(state);
  std::ofstream(state / "ca.pem") << "not a certificate\n";
  try {
    ensure_dev_certificates(state, "localhost");
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr((state / "ca.pem").string()));
  }
  EXPECT_EQ(file_bytes(state / "ca.pem"), "not a certificate\n");
}

TEST_F(DevCertificates, ADomainThatIsNotADnsNameIsRefused) {
  EXPECT_THROW(ensure_dev_certificates(state, "bad domain"), std::runtime_error);
  EXPECT_THROW(ensure_dev_certificates(state, "127.0.0.1"), std::runtime_error);
  EXPECT_THROW(ensure_dev_certificates(state, ""), std::runtime_error);
}

TEST(ServerTls, MissingCertificateFileThrowsNamingIt) {
  temporary_directory dir;
  const fs::path missing = dir.path() / "missing.pem";
  try {
    make_server_tls(missing, dir.path() / "key.pem");
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot load TLS certificate " + missing.string()));
    EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
  }
}

TEST(ServerTls, CertificateFileWithoutPemThrowsOpenSslReason) {
  temporary_directory dir;
  const fs::path garbage = dir.path() / "garbage.pem";
  std::ofstream(garbage) << "hello\n";
  try {
    make_server_tls(garbage, garbage);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot load TLS certificate " + garbage.string() + ": no start line");
  }
}

TEST(ServerTls, KeyOfAnotherCertificateThrowsNamingTheKey) {
  temporary_directory dir;
  const dev_certificates dev = ensure_dev_certificates(dir.path() / "state", "localhost");
  try {
    make_server_tls(dev.server_cert, dev.ca_key);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(dev.ca_key.string()));
  }
}

TEST(ClientTls, MissingTrustFileThrowsNamingIt) {
  const fs::path missing = "/nonexistent/porthole/ca.pem";
  try {
    make_client_tls(missing);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(missing.string()));
  }
}

class Handshake : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = std::make_unique<temporary_directory>();
    dev_ = ensure_dev_certificates(state_->path() / "state", "localhost");
  }
  static void TearDownTestSuite() { state_.reset(); }

  static std::unique_ptr<temporary_directory> state_;
  static dev_certificates dev_;
  ssl::context server = make_server_tls(dev_.server_cert, dev_.server_key);
  ssl::context client = make_client_tls(dev_.ca_cert);
};

std::unique_ptr<temporary_directory> Handshake::state_;
dev_certificates Handshake::dev_;

TEST_F(Handshake, SucceedsForTheDomainAndSendsItAsSni) {
  const handshake_outcome outcome = handshake(server, client, "LocalHost");
  EXPECT_FALSE(outcome.client.handshake) << outcome.client.handshake.message();
  EXPECT_FALSE(outcome.server.handshake) << outcome.server.handshake.message();
  EXPECT_EQ(outcome.server.sni, "localhost");
}

TEST_F(Handshake, SucceedsForTheLoopbackAddressWithoutSni) {
  const handshake_outcome outcome = handshake(server, client, "127.0.0.1");
  EXPECT_FALSE(outcome.client.handshake) << outcome.client.handshake.message();
  EXPECT_EQ(outcome.server.sni, "");
}

TEST_F(Handshake, FailsVerificationForAnotherHost) {
  const handshake_outcome outcome = handshake(server, client, "example.com");
  EXPECT_TRUE(is_ssl_reason(outcome.client.handshake, SSL_R_CERTIFICATE_VERIFY_FAILED))
      << outcome.client.handshake.message();
  EXPECT_TRUE(outcome.server.handshake);
}

TEST_F(Handshake, FailsVerificationForAnotherAddress) {
  const handshake_outcome outcome = handshake(server, client, "127.0.0.2");
  EXPECT_TRUE(is_ssl_reason(outcome.client.handshake, SSL_R_CERTIFICATE_VERIFY_FAILED))
      << outcome.client.handshake.message();
}

TEST_F(Handshake, FailsForAClientThatDoesNotTrustTheDevCa) {
  ssl::context system_roots = make_client_tls(std::nullopt);
  const handshake_outcome outcome = handshake(server, system_roots, "localhost");
  EXPECT_TRUE(is_ssl_reason(outcome.client.handshake, SSL_R_CERTIFICATE_VERIFY_FAILED))
      << outcome.client.handshake.message();
}

TEST_F(Handshake, RefusesATls11OnlyClient) {
  ssl::context old = legacy_client([](SSL_CTX* ctx) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
    // OpenSSL 3 offers TLS 1.1 only at security level 0.
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
  });
  const handshake_outcome outcome = handshake(server, old, "");
  EXPECT_TRUE(is_ssl_reason(outcome.server.handshake, SSL_R_UNSUPPORTED_PROTOCOL))
      << outcome.server.handshake.message();
  EXPECT_TRUE(outcome.client.handshake);
}

TEST_F(Handshake, RefusesATls12ClientOfferingOnlyCbcSuites) {
  ssl::context old = legacy_client([](SSL_CTX* ctx) {
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384");
  });
  const handshake_outcome outcome = handshake(server, old, "");
  EXPECT_TRUE(is_ssl_reason(outcome.server.handshake, SSL_R_NO_SHARED_CIPHER))
      << outcome.server.handshake.message();
}

TEST_F(Handshake, ATls12ClientGetsAForwardSecretAeadSuite) {
  SSL_CTX_set_max_proto_version(client.native_handle(), TLS1_2_VERSION);
  const handshake_outcome outcome = handshake(server, client, "localhost");
  ASSERT_FALSE(outcome.client.handshake) << outcome.client.handshake.message();
  EXPECT_EQ(outcome.client.version, "TLSv1.2");
  EXPECT_THAT(outcome.client.cipher, HasSubstr("ECDHE"));
  EXPECT_THAT(outcome.client.cipher, ::testing::AnyOf(HasSubstr("GCM"), HasSubstr("CHACHA20")));
}

TEST_F(Handshake, TwoPortholeEndsAgreeOnAes128GcmOverTls13) {
  const handshake_outcome outcome = handshake(server, client, "localhost");
  ASSERT_FALSE(outcome.client.handshake) << outcome.client.handshake.message();
  EXPECT_EQ(outcome.client.version, "TLSv1.3");
  EXPECT_EQ(outcome.client.cipher, "TLS_AES_128_GCM_SHA256");
}

TEST_F(Handshake, TheServerOrderWinsOverAClientPreferringAes256) {
  ssl::context other = legacy_client([](SSL_CTX* ctx) {
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256");
  });
  const handshake_outcome outcome = handshake(server, other, "");
  ASSERT_FALSE(outcome.client.handshake) << outcome.client.handshake.message();
  EXPECT_EQ(outcome.client.cipher, "TLS_AES_128_GCM_SHA256");
}

TEST_F(Handshake, ATls13ClientResumesItsSession) {
  const handshake_outcome first = handshake(server, client, "localhost");
  ASSERT_FALSE(first.client.handshake) << first.client.handshake.message();
  ASSERT_TRUE(first.client.session);
  EXPECT_EQ(first.client.version, "TLSv1.3");
  EXPECT_FALSE(first.client.resumed);

  const handshake_outcome second =
      handshake(server, client, "localhost", first.client.session.get());
  ASSERT_FALSE(second.client.handshake) << second.client.handshake.message();
  EXPECT_TRUE(second.client.resumed);
}

TEST_F(Handshake, ATls12ClientResumesItsSession) {
  SSL_CTX_set_max_proto_version(client.native_handle(), TLS1_2_VERSION);
  const handshake_outcome first = handshake(server, client, "localhost");
  ASSERT_FALSE(first.client.handshake) << first.client.handshake.message();
  ASSERT_TRUE(first.client.session);

  const handshake_outcome second =
      handshake(server, client, "localhost", first.client.session.get());
  ASSERT_FALSE(second.client.handshake) << second.client.handshake.message();
  EXPECT_TRUE(second.client.resumed);
}

// OpenSSL (and curl) ignore a wildcard directly under a one-label name, so
// the dev certificate's "*.localhost" does not cover foo.localhost.
TEST_F(Handshake, WildcardUnderLocalhostIsRefusedWithoutMinting) {
  const handshake_outcome outcome = handshake(server, client, "foo.localhost");
  EXPECT_TRUE(is_ssl_reason(outcome.client.handshake, SSL_R_CERTIFICATE_VERIFY_FAILED))
      << outcome.client.handshake.message();
}

TEST_F(Handshake, MintedLeafVerifiesForAnySubdomain) {
  enable_dev_leaf_minting(server, dev_, "localhost");
  for (const std::string host : {"foo.localhost", "a.b.localhost", "localhost"}) {
    const handshake_outcome outcome = handshake(server, client, host);
    EXPECT_FALSE(outcome.client.handshake) << host << ": " << outcome.client.handshake.message();
    EXPECT_EQ(outcome.server.sni, host);
  }
}

TEST_F(Handshake, MintedLeafIsReusedForTheSameName) {
  enable_dev_leaf_minting(server, dev_, "localhost");
  const handshake_outcome first = handshake(server, client, "foo.localhost");
  const handshake_outcome second = handshake(server, client, "foo.localhost");
  const handshake_outcome other = handshake(server, client, "bar.localhost");
  ASSERT_TRUE(first.client.peer_certificate && second.client.peer_certificate &&
              other.client.peer_certificate);
  EXPECT_EQ(X509_cmp(first.client.peer_certificate.get(), second.client.peer_certificate.get()), 0);
  EXPECT_NE(X509_cmp(first.client.peer_certificate.get(), other.client.peer_certificate.get()), 0);
}

TEST_F(Handshake, MintingLeavesNamesOutsideTheDomainToTheDefaultCertificate) {
  enable_dev_leaf_minting(server, dev_, "localhost");
  for (const std::string host : {"example.com", "foolocalhost"}) {
    const handshake_outcome outcome = handshake(server, client, host);
    EXPECT_TRUE(is_ssl_reason(outcome.client.handshake, SSL_R_CERTIFICATE_VERIFY_FAILED))
        << host << ": " << outcome.client.handshake.message();
  }
}

TEST(VerifyHost, RefusesAnEmptyName) {
  ssl::context ctx = make_client_tls(std::nullopt);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.native_handle()), &SSL_free);
  EXPECT_THROW(verify_host(ssl.get(), ""), std::invalid_argument);
}

// The check a browser or curl user makes: curl, with the dev CA, fetching
// https://foo.localhost from a server that mints leaves, and failing from
// one that does not.
class Curl : public Handshake {
 protected:
  void SetUp() override {
    if (std::system("command -v curl >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "curl is not installed";
    }
  }

  // Serves one HTTPS request on a thread while curl runs; curl's exit code.
  int fetch(const std::string& host) {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const unsigned short port = acceptor.local_endpoint().port();
    auto served = asio::co_spawn(io, answer_one(acceptor, server), asio::use_future);
    std::thread runner([&io] { io.run_for(guard_time); });
    const std::string url = "https://" + host + ":" + std::to_string(port) + "/";
    const std::string command = "curl -sS --max-time 10 -o /dev/null --cacert '" +
                                dev_.ca_cert.string() + "' --resolve " + host + ":" +
                                std::to_string(port) + ":127.0.0.1 " + url;
    const int status = std::system(command.c_str());
    runner.join();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static asio::awaitable<void> answer_one(tcp::acceptor& acceptor, ssl::context& ctx) {
    auto [accept_error, socket] = co_await acceptor.async_accept(use_tuple);
    if (accept_error) {
      co_return;
    }
    ssl::stream<tcp::socket> stream(std::move(socket), ctx);
    auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
    if (handshake_error) {
      co_return;
    }
    std::string request;
    co_await asio::async_read_until(stream, asio::dynamic_buffer(request, 16 * 1024), "\r\n\r\n",
                                    use_tuple);
    const std::string response =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    co_await asio::async_write(stream, asio::buffer(response), use_tuple);
    co_await stream.async_shutdown(use_tuple);
  }
};

TEST_F(Curl, AcceptsAMintedLeafForASubdomainOfLocalhost) {
  enable_dev_leaf_minting(server, dev_, "localhost");
  EXPECT_EQ(fetch("foo.localhost"), 0);
}

TEST_F(Curl, RefusesTheWildcardUnderLocalhostWithoutMinting) {
  // 60: "peer certificate cannot be authenticated with known CA certificates"
  // covers curl's own host name check failing.
  EXPECT_EQ(fetch("foo.localhost"), 60);
}

}  // namespace
}  // namespace porthole::net
