#include "net/tls.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace porthole::net {
namespace {

namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;

// TLS 1.3 suites, all forward-secret AEAD. AES-128-GCM first, as Go's
// crypto/tls and browsers order them on CPUs with AES instructions: it is
// about a third cheaper than OpenSSL's default first choice, AES-256-GCM, and
// encryption is a quarter of a bulk transfer's CPU time. The server's order
// decides (SSL_OP_CIPHER_SERVER_PREFERENCE).
constexpr const char* tls13_ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD cipher
// only.
constexpr const char* tls12_cipher_list =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// How long a server keeps a TLS 1.2 session or honours a ticket. Clients
// resume for many short connections; a short window bounds how long one
// ticket key protects old sessions.
constexpr long session_lifetime_seconds = 2 * 60 * 60;

constexpr int ca_validity_days = 10 * 365;
constexpr int server_validity_days = 825;  // the most Apple platforms accept
// A certificate with less left than this is issued again.
constexpr int renew_before_days = 30;
constexpr std::size_t minted_leaf_cache_limit = 1000;

constexpr std::string_view ca_common_name = "porthole development CA";

template <auto Free>
struct openssl_deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using bignum_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using extension_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION_free>>;

void free_x509_stack(STACK_OF(X509) * stack) {
  sk_X509_pop_free(stack, X509_free);
}
using x509_stack_ptr = std::unique_ptr<STACK_OF(X509), openssl_deleter<free_x509_stack>>;

// The first queued error is the cause ("no start line", "No such file or
// directory"); the later ones only name the calls that failed because of it.
std::string take_openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return "unknown OpenSSL error";
  }
  if (ERR_SYSTEM_ERROR(code)) {
    return std::generic_category().message(ERR_GET_REASON(code));
  }
  if (const char* reason = ERR_reason_error_string(code)) {
    return reason;
  }
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

[[noreturn]] void throw_openssl(const std::string& what) {
  throw std::runtime_error(what + ": " + take_openssl_reason());
}

std::string lower_case(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

// A lower-case DNS name: labels of letters, digits and hyphens, 1 to 63
// characters each, 253 in all. SNI names are chosen by the peer, so this is
// what keeps them out of certificate extensions unchecked.
bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  std::size_t label_length = 0;
  for (const char c : name) {
    if (c == '.') {
      if (label_length == 0) {
        return false;
      }
      label_length = 0;
      continue;
    }
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!allowed || ++label_length > 63) {
      return false;
    }
  }
  return label_length != 0;
}

// Settings both ends share: TLS 1.2 at least, forward-secret AEAD suites, no
// compression (CRIME), no renegotiation, and no prompt on the terminal for an
// encrypted key.
void apply_common_policy(ssl::context& ctx) {
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    throw_openssl("cannot require TLS 1.2");
  }
  if (SSL_CTX_set_cipher_list(native, tls12_cipher_list) != 1) {
    throw_openssl("cannot set the TLS 1.2 cipher suites");
  }
  if (SSL_CTX_set_ciphersuites(native, tls13_ciphersuites) != 1) {
    throw_openssl("cannot set the TLS 1.3 cipher suites");
  }
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_clear_options(native, SSL_OP_NO_TICKET);
  SSL_CTX_set_default_passwd_cb(native, [](char*, int, int, void*) { return 0; });
}

// Files --------------------------------------------------------------------

class file_descriptor {
 public:
  explicit file_descriptor(int fd) : fd_(fd) {}
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::generic_category().message(errno));
}

// Writes through a temporary file and a rename, so a reader never sees half a
// key, and creates the file with `mode` so a key is never readable by others.
void write_file(const fs::path& path, const std::string& bytes, mode_t mode) {
  const fs::path temporary = path.string() + ".tmp";
  file_descriptor fd(
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) {
    throw_errno("cannot create " + temporary.string());
  }
  if (::fchmod(fd.get(), mode) != 0) {
    throw_errno("cannot set the mode of " + temporary.string());
  }
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno("cannot write " + temporary.string());
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    throw_errno("cannot write " + temporary.string());
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    throw_errno("cannot rename " + temporary.string() + " to " + path.string());
  }
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string to_pem(X509* cert) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    throw_openssl("cannot encode a certificate");
  }
  return bio_contents(bio.get());
}

std::string to_pem(EVP_PKEY* key) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw_openssl("cannot encode a private key");
  }
  return bio_contents(bio.get());
}

bio_ptr open_for_reading(const fs::path& path, const char* what) {
  bio_ptr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    throw_openssl(std::string("cannot load ") + what + " " + path.string());
  }
  return bio;
}

x509_ptr load_certificate(const fs::path& path) {
  bio_ptr bio = open_for_reading(path, "certificate");
  x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    throw_openssl("cannot load certificate " + path.string());
  }
  return cert;
}

pkey_ptr load_private_key(const fs::path& path) {
  bio_ptr bio = open_for_reading(path, "private key");
  pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    throw_openssl("cannot load private key " + path.string());
  }
  return key;
}

std::string read_small_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return {};
  }
  bio_ptr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return {};
  }
  char buffer[512];
  const int n = BIO_read(bio.get(), buffer, sizeof buffer);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

// Certificates ---------------------------------------------------------------

pkey_ptr generate_p256_key() {
  pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) {
    throw_openssl("cannot generate an EC P-256 key");
  }
  return key;
}

// Random 159-bit serial numbers with the top bit set: positive, 20 octets,
// never zero (RFC 5280 4.1.2.2).
void set_random_serial(X509* cert) {
  bignum_ptr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    throw_openssl("cannot make a certificate serial number");
  }
}

void add_extension(X509* cert, X509V3_CTX* v3, int nid, const std::string& value) {
  extension_ptr ext(X509V3_EXT_conf_nid(nullptr, v3, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    throw_openssl("cannot add certificate extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
  }
}

struct certificate_request {
  EVP_PKEY* subject_key;
  std::string common_name;  // left out of the subject if empty
  X509* issuer;             // null: self-signed
  EVP_PKEY* issuer_key;
  int validity_days;
  std::vector<std::pair<int, std::string>> extensions;  // NID, X509v3 config value
};

x509_ptr issue_certificate(const certificate_request& request) {
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    throw_openssl("cannot make a certificate");
  }
  set_random_serial(cert.get());
  // An hour back, so a peer whose clock lags a little still accepts it.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 * 60) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), request.validity_days, 0, nullptr) ==
          nullptr) {
    throw_openssl("cannot set certificate validity");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!request.common_name.empty() &&
      X509_NAME_add_entry_by_txt(
          subject, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(request.common_name.c_str()), -1, -1, 0) != 1) {
    throw_openssl("cannot set certificate subject CN=" + request.common_name);
  }
  X509* issuer = request.issuer != nullptr ? request.issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_set_pubkey(cert.get(), request.subject_key) != 1) {
    throw_openssl("cannot set certificate issuer or key");
  }
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : request.extensions) {
    add_extension(cert.get(), &v3, nid, value);
  }
  if (X509_sign(cert.get(), request.issuer_key, EVP_sha256()) == 0) {
    throw_openssl("cannot sign a certificate");
  }
  return cert;
}

x509_ptr issue_ca_certificate(EVP_PKEY* key) {
  return issue_certificate({
      .subject_key = key,
      .common_name = std::string(ca_common_name),
      .issuer = nullptr,
      .issuer_key = key,
      .validity_days = ca_validity_days,
      .extensions =
          {
              {NID_basic_constraints, "critical,CA:TRUE"},
              {NID_key_usage, "critical,keyCertSign,cRLSign"},
              {NID_subject_key_identifier, "hash"},
          },
  });
}

// `subject_alt_names` in X509v3 config form: "DNS:a,DNS:*.a,IP:127.0.0.1".
x509_ptr issue_leaf_certificate(EVP_PKEY* key, const std::string& dns_name,
                                const std::string& subject_alt_names, X509* ca, EVP_PKEY* ca_key) {
  // CN is at most 64 characters (RFC 5280 ub-common-name); clients match
  // the subjectAltName, which has no such bound.
  const bool name_fits_cn = dns_name.size() <= 64;
  return issue_certificate({
      .subject_key = key,
      .common_name = name_fits_cn ? dns_name : std::string(),
      .issuer = ca,
      .issuer_key = ca_key,
      .validity_days = server_validity_days,
      .extensions =
          {
              {NID_basic_constraints, "critical,CA:FALSE"},
              {NID_key_usage, "critical,digitalSignature"},
              {NID_ext_key_usage, "serverAuth"},
              {NID_subject_alt_name, (name_fits_cn ? "" : "critical,") + subject_alt_names},
              {NID_subject_key_identifier, "hash"},
              {NID_authority_key_identifier, "keyid:always"},
          },
  });
}

bool valid_for_days(X509* cert, int days) {
  const std::time_t deadline = std::chrono::system_clock::to_time_t(
      std::chrono::system_clock::now() + std::chrono::days(days));
  std::time_t at = deadline;
  return X509_cmp_time(X509_get0_notAfter(cert), &at) > 0;
}

struct authority {
  x509_ptr cert;
  pkey_ptr key;
};

struct dev_files {
  explicit dev_files(const fs::path& dir)
      : ca_cert(dev_ca_certificate(dir)),
        ca_key(dir / "ca-key.pem"),
        server_cert(dir / "server.pem"),
        server_key(dir / "server-key.pem"),
        server_domain(dir / "server-domain") {}

  fs::path ca_cert;
  fs::path ca_key;
  fs::path server_cert;
  fs::path server_key;
  fs::path server_domain;  // the domain server.pem was issued for
};

// The CA in the state directory; a new one if there is none or it is about
// to expire. A CA that exists but cannot be read is an error, not replaced:
// clients may already trust it.
std::pair<authority, bool> load_or_create_ca(const dev_files& files) {
  std::error_code ec;
  if (fs::exists(files.ca_cert, ec)) {
    authority ca{load_certificate(files.ca_cert), load_private_key(files.ca_key)};
    if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
      throw_openssl("development CA key " + files.ca_key.string() + " does not match " +
                    files.ca_cert.string());
    }
    if (valid_for_days(ca.cert.get(), renew_before_days)) {
      return {std::move(ca), false};
    }
  }
  authority ca{nullptr, generate_p256_key()};
  ca.cert = issue_ca_certificate(ca.key.get());
  write_file(files.ca_key, to_pem(ca.key.get()), 0600);
  write_file(files.ca_cert, to_pem(ca.cert.get()), 0644);
  return {std::move(ca), true};
}

// Whether server.pem and server-key.pem exist, were issued by `ca` for
// `domain`, belong together and have a while left.
// What server.pem was issued for, as kept in server-domain: the domain, then
// the extra addresses (none for the usual loopback-only set-up, so a file of
// an older version still matches).
std::string server_identity(const std::string& domain, const std::vector<std::string>& ips) {
  std::string id = domain;
  for (const auto& ip : ips) {
    id += " " + ip;
  }
  return id + "\n";
}

bool server_certificate_current(const dev_files& files, const authority& ca,
                                const std::string& identity) {
  if (read_small_file(files.server_domain) != identity) {
    return false;
  }
  try {
    const x509_ptr leaf = load_certificate(files.server_cert);
    const pkey_ptr key = load_private_key(files.server_key);
    pkey_ptr ca_public_key(X509_get_pubkey(ca.cert.get()));
    const bool current = X509_verify(leaf.get(), ca_public_key.get()) == 1 &&
                         X509_check_private_key(leaf.get(), key.get()) == 1 &&
                         valid_for_days(leaf.get(), renew_before_days);
    ERR_clear_error();
    return current;
  } catch (const std::runtime_error&) {
    return false;
  }
}

std::string server_alt_names(const std::string& domain, const std::vector<std::string>& ips) {
  std::string names = "DNS:" + domain + ",DNS:*." + domain + ",IP:127.0.0.1,IP:::1";
  for (const auto& ip : ips) {
    names += ",IP:" + ip;
  }
  return names;
}

void issue_server_certificate(const dev_files& files, const authority& ca,
                              const std::string& domain, const std::vector<std::string>& ips) {
  const pkey_ptr key = generate_p256_key();
  const x509_ptr leaf = issue_leaf_certificate(key.get(), domain, server_alt_names(domain, ips),
                                               ca.cert.get(), ca.key.get());
  write_file(files.server_key, to_pem(key.get()), 0600);
  write_file(files.server_cert, to_pem(leaf.get()) + to_pem(ca.cert.get()), 0644);
  // Written last: its presence says the pair above is complete.
  write_file(files.server_domain, server_identity(domain, ips), 0644);
}

std::string checked_domain(const std::string& domain) {
  std::string name = lower_case(domain);
  if (!is_dns_name(name) || is_ip_literal(name)) {
    throw std::runtime_error("development certificate domain is not a DNS name: " + domain);
  }
  return name;
}

// Minting leaf certificates per SNI name -------------------------------------

// Issues certificates for names under one domain, all for one key (so minting
// is one ECDSA signature, not a key generation), and keeps the most recently
// used ones.
class leaf_mint {
 public:
  leaf_mint(authority ca, pkey_ptr leaf_key, std::string domain)
      : ca_(std::move(ca)),
        leaf_key_(std::move(leaf_key)),
        domain_(std::move(domain)),
        chain_(sk_X509_new_null()) {
    if (!chain_ || sk_X509_push(chain_.get(), ca_.cert.get()) == 0) {
      throw_openssl("cannot build the development certificate chain");
    }
    X509_up_ref(ca_.cert.get());
  }

  bool covers(const std::string& name) const {
    if (!is_dns_name(name)) {
      return false;
    }
    return name == domain_ || (name.size() > domain_.size() + 1 && name.ends_with(domain_) &&
                               name[name.size() - domain_.size() - 1] == '.');
  }

  // Switches `ssl` to the certificate for `name`.
  bool present(SSL* ssl, const std::string& name) {
    const x509_ptr cert = certificate_for(name);
    return SSL_use_cert_and_key(ssl, cert.get(), leaf_key_.get(), chain_.get(), 1) == 1;
  }

 private:
  using lru_list = std::list<std::pair<std::string, x509_ptr>>;

  x509_ptr certificate_for(const std::string& name) {
    {
      std::lock_guard lock(mutex_);
      if (auto found = index_.find(name); found != index_.end()) {
        lru_.splice(lru_.begin(), lru_, found->second);
        return shared(found->second->second.get());
      }
    }
    // Issued outside the lock: handshakes for cached names need not wait.
    x509_ptr cert =
        issue_leaf_certificate(leaf_key_.get(), name, "DNS:" + name, ca_.cert.get(), ca_.key.get());
    std::lock_guard lock(mutex_);
    if (auto found = index_.find(name); found != index_.end()) {
      return shared(found->second->second.get());
    }
    lru_.emplace_front(name, shared(cert.get()));
    index_.emplace(name, lru_.begin());
    if (lru_.size() > minted_leaf_cache_limit) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return cert;
  }

  static x509_ptr shared(X509* cert) {
    X509_up_ref(cert);
    return x509_ptr(cert);
  }

  const authority ca_;
  const pkey_ptr leaf_key_;
  const std::string domain_;
  const x509_stack_ptr chain_;
  std::mutex mutex_;
  lru_list lru_;
  std::unordered_map<std::string, lru_list::iterator> index_;
};

// The SSL_CTX owns its leaf_mint through ex_data, so the mint lives exactly
// as long as the context, however the asio::ssl::context is moved.
void free_leaf_mint(void*, void* mint, CRYPTO_EX_DATA*, int, long, void*) {
  const std::unique_ptr<leaf_mint> owned(static_cast<leaf_mint*>(mint));
}

int leaf_mint_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_leaf_mint);
  return index;
}

int on_server_name(SSL* ssl, int* alert, void* arg) {
  auto* mint = static_cast<leaf_mint*>(arg);
  const std::string name = server_name(ssl);
  if (!mint->covers(name)) {
    return SSL_TLSEXT_ERR_OK;
  }
  try {
    if (mint->present(ssl, name)) {
      return SSL_TLSEXT_ERR_OK;
    }
  } catch (const std::exception&) {
    // Answering with the wrong certificate would only move the failure to
    // the client's host name check; end the handshake here.
  }
  ERR_clear_error();
  *alert = SSL_AD_INTERNAL_ERROR;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

ssl::context make_server_tls(const fs::path& cert_chain, const fs::path& private_key) {
  ssl::context ctx(ssl::context::tls_server);
  apply_common_policy(ctx);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(native, cert_chain.c_str()) != 1) {
    throw_openssl("cannot load TLS certificate " + cert_chain.string());
  }
  if (SSL_CTX_use_PrivateKey_file(native, private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw_openssl("cannot load TLS private key " + private_key.string() + " (for " +
                  cert_chain.string() + ")");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw_openssl("TLS private key " + private_key.string() + " does not match " +
                  cert_chain.string());
  }
  static constexpr unsigned char session_context[] = "porthole";
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(native, session_context, sizeof session_context - 1);
  SSL_CTX_set_timeout(native, session_lifetime_seconds);
  return ctx;
}

namespace {

// A node's own certificate and key, and the cluster CA as the only issuer it
// accepts from the other end.
void use_node_identity(ssl::context& ctx, const fs::path& cluster_ca, const fs::path& cert,
                       const fs::path& key) {
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_use_certificate_chain_file(native, cert.c_str()) != 1) {
    throw_openssl("cannot load the node certificate " + cert.string());
  }
  if (SSL_CTX_use_PrivateKey_file(native, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw_openssl("cannot load the node key " + key.string());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw_openssl("the node key " + key.string() + " does not match " + cert.string());
  }
  // Only the cluster CA: not the system's roots, not the public certificate's issuer.
  X509_STORE* store = X509_STORE_new();
  SSL_CTX_set_cert_store(native, store);
  if (SSL_CTX_load_verify_file(native, cluster_ca.c_str()) != 1) {
    throw_openssl("cannot load the cluster CA " + cluster_ca.string());
  }
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
}

}  // namespace

namespace {

int session_cache_ctx_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int session_cache_ssl_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

tls_session_cache::tls_session_cache(ssl::context& ctx) : ctx_(ctx.native_handle()) {
  SSL_CTX_set_ex_data(ctx_, session_cache_ctx_index(), this);
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_, &tls_session_cache::on_new_session);
}

tls_session_cache::~tls_session_cache() {
  SSL_CTX_sess_set_new_cb(ctx_, nullptr);
  SSL_CTX_set_ex_data(ctx_, session_cache_ctx_index(), nullptr);
}

void tls_session_cache::prepare(SSL* ssl, const std::string& peer) {
  auto it = sessions_.try_emplace(peer).first;
  if (it->second) {
    SSL_set_session(ssl, it->second.get());
  }
  // The map's key lives as long as the cache: the callback finds it there.
  SSL_set_ex_data(ssl, session_cache_ssl_index(), const_cast<std::string*>(&it->first));
}

int tls_session_cache::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<tls_session_cache*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), session_cache_ctx_index()));
  auto* peer = static_cast<const std::string*>(SSL_get_ex_data(ssl, session_cache_ssl_index()));
  if (self == nullptr || peer == nullptr) {
    return 0;
  }
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) {
    self->sessions_[*peer] = std::shared_ptr<SSL_SESSION>(copy, &SSL_SESSION_free);
  }
  return 0;  // OpenSSL keeps ownership of `session`
}

ssl::context make_node_server_tls(const fs::path& cluster_ca, const fs::path& cert,
                                  const fs::path& key) {
  ssl::context ctx(ssl::context::tls_server);
  apply_common_policy(ctx);
  use_node_identity(ctx, cluster_ca, cert, key);
  static constexpr unsigned char session_context[] = "porthole-node";
  SSL_CTX_set_session_id_context(ctx.native_handle(), session_context,
                                 sizeof session_context - 1);
  return ctx;
}

ssl::context make_node_client_tls(const fs::path& cluster_ca, const fs::path& cert,
                                  const fs::path& key) {
  ssl::context ctx(ssl::context::tls_client);
  apply_common_policy(ctx);
  use_node_identity(ctx, cluster_ca, cert, key);
  return ctx;
}

ssl::context make_client_tls(const std::optional<fs::path>& trust_ca) {
  ssl::context ctx(ssl::context::tls_client);
  apply_common_policy(ctx);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  if (trust_ca) {
    if (SSL_CTX_load_verify_file(native, trust_ca->c_str()) != 1) {
      throw_openssl("cannot load trusted CA certificates " + trust_ca->string());
    }
  } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
    throw_openssl("cannot load the system's trusted CA certificates");
  }
  // OpenSSL never looks sessions up on the client side: the caller keeps the
  // session of one connection (SSL_get1_session) and offers it on the next
  // (SSL_set_session). Client mode only enables the new-session callback;
  // the internal store would just fill up.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return ctx;
}

fs::path dev_ca_certificate(const fs::path& state_dir) {
  return state_dir / "ca.pem";
}

dev_certificates ensure_dev_certificates(const fs::path& state_dir, const std::string& domain,
                                         const std::vector<std::string>& extra_ips) {
  const std::string name = checked_domain(domain);
  std::error_code ec;
  if (!fs::exists(state_dir, ec)) {
    fs::create_directories(state_dir);
    fs::permissions(state_dir, fs::perms::owner_all, fs::perm_options::replace);
  }
  const dev_files files(state_dir);
  const auto [ca, new_ca] = load_or_create_ca(files);
  const std::string identity = server_identity(name, extra_ips);
  if (new_ca || !server_certificate_current(files, ca, identity)) {
    issue_server_certificate(files, ca, name, extra_ips);
  }
  return {.ca_cert = files.ca_cert,
          .server_cert = files.server_cert,
          .server_key = files.server_key,
          .ca_key = files.ca_key};
}

void enable_dev_leaf_minting(ssl::context& ctx, const dev_certificates& dev,
                             const std::string& domain) {
  authority ca{load_certificate(dev.ca_cert), load_private_key(dev.ca_key)};
  auto mint = std::make_unique<leaf_mint>(std::move(ca), load_private_key(dev.server_key),
                                          checked_domain(domain));
  SSL_CTX* native = ctx.native_handle();
  const int index = leaf_mint_index();
  if (index < 0) {
    throw_openssl("cannot attach certificate minting to a TLS context");
  }
  // Replacing a mint set earlier: ex_data frees only the last one.
  std::unique_ptr<leaf_mint> previous(static_cast<leaf_mint*>(SSL_CTX_get_ex_data(native, index)));
  if (SSL_CTX_set_ex_data(native, index, mint.get()) != 1) {
    previous.release();
    throw_openssl("cannot attach certificate minting to a TLS context");
  }
  leaf_mint* owned = mint.release();
  SSL_CTX_set_tlsext_servername_callback(native, &on_server_name);
  SSL_CTX_set_tlsext_servername_arg(native, owned);
}

void verify_host(SSL* ssl, const std::string& host) {
  std::string name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  if (is_ip_literal(name)) {
    // RFC 6066 forbids IP addresses in SNI; the certificate must list the IP.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
      ERR_clear_error();
      throw std::invalid_argument("cannot verify TLS peer address " + host);
    }
    return;
  }
  if (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  if (name.empty() || name.find('\0') != std::string::npos ||
      SSL_set_tlsext_host_name(ssl, name.c_str()) != 1 || SSL_set1_host(ssl, name.c_str()) != 1) {
    ERR_clear_error();
    throw std::invalid_argument("cannot verify TLS peer host name '" + host + "'");
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
}

std::string server_name(SSL* ssl) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) {
    return {};
  }
  return lower_case(name);
}

namespace {

int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
  // Server preference: h2, then http/1.1.
  static constexpr unsigned char both[] = "\x02h2\x08http/1.1";
  static constexpr unsigned char http1[] = "\x08http/1.1";
  const auto* h2_for = static_cast<const std::function<bool(std::string_view)>*>(arg);
  const bool h2 = h2_for == nullptr || (*h2_for)(server_name(ssl));
  const unsigned char* preferred = h2 ? both : http1;
  const unsigned int preferred_len = h2 ? sizeof(both) - 1 : sizeof(http1) - 1;
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, preferred, preferred_len, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

void offer_h2_and_http1(boost::asio::ssl::context& ctx,
                        const std::function<bool(std::string_view)>* h2_for) {
  SSL_CTX_set_alpn_select_cb(ctx.native_handle(), &select_alpn,
                             const_cast<std::function<bool(std::string_view)>*>(h2_for));
}

std::string alpn_protocol(SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &data, &len);
  return data == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace porthole::net
