#pragma once
// A real etcd (/usr/bin/etcd, Debian's etcd-server) for one test: a single
// member on loopback, ports chosen by the OS, its data in a directory of the
// test's, plain HTTP or TLS with client certificates. Killed when it goes.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace porthole::testing {

inline constexpr const char* etcd_program = "/usr/bin/etcd";

/// Files of a test certificate authority, a certificate for etcd
/// (127.0.0.1 and localhost) and one for its clients.
struct etcd_tls_files {
  std::filesystem::path ca_cert;
  std::filesystem::path server_cert, server_key;
  std::filesystem::path client_cert, client_key;

  /// Makes them with the openssl command in `dir` (EC P-256, a day).
  /// Throws std::runtime_error if a command fails.
  static etcd_tls_files make(const std::filesystem::path& dir, const std::string& ca_name) {
    const std::string d = dir.string() + "/";
    etcd_tls_files f{d + ca_name + ".crt", d + "server.crt", d + "server.key", d + "client.crt",
                     d + "client.key"};
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream(d + "server.ext")
        << "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n";
    std::ofstream(d + "client.ext") << "basicConstraints=CA:FALSE\nkeyUsage=critical,"
                                       "digitalSignature\nextendedKeyUsage=clientAuth\n";
    const std::string quiet = " >>" + d + "openssl.log 2>&1";
    const std::vector<std::string> commands = {
        "openssl req -x509" + ec + " -keyout " + d + ca_name + ".key -out " + f.ca_cert.string() +
            " -subj /CN=" + ca_name + " -days 1 -addext basicConstraints=critical,CA:TRUE" +
            " -addext keyUsage=critical,keyCertSign,cRLSign",
        "openssl req" + ec + " -keyout " + f.server_key.string() + " -out " + d +
            "server.csr -subj /CN=etcd",
        "openssl x509 -req -in " + d + "server.csr -CA " + f.ca_cert.string() + " -CAkey " + d +
            ca_name + ".key -CAcreateserial -days 1 -extfile " + d + "server.ext -out " +
            f.server_cert.string(),
        "openssl req" + ec + " -keyout " + f.client_key.string() + " -out " + d +
            "client.csr -subj /CN=porthole",
        "openssl x509 -req -in " + d + "client.csr -CA " + f.ca_cert.string() + " -CAkey " + d +
            ca_name + ".key -CAcreateserial -days 1 -extfile " + d + "client.ext -out " +
            f.client_cert.string(),
    };
    for (const std::string& command : commands) {
      if (std::system((command + quiet).c_str()) != 0) {
        throw std::runtime_error("failed: " + command + " (see " + d + "openssl.log)");
      }
    }
    return f;
  }
};

/// A free TCP port on 127.0.0.1, as the OS chose it for port 0 (free again
/// once this returns: etcd binds it right after).
inline unsigned short free_loopback_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

class etcd_process {
 public:
  /// Starts etcd with its data and log in `dir`, and waits (at most 20 s)
  /// until /health says it has a leader. Throws std::runtime_error with the
  /// end of etcd's log if it does not get there.
  explicit etcd_process(const std::filesystem::path& dir,
                        std::optional<etcd_tls_files> tls = std::nullopt)
      : dir_(dir), tls_(std::move(tls)) {
    // The ports are free when chosen, not always when etcd binds them (a
    // test running beside this one may take one in between): then again.
    for (int attempt = 1;; ++attempt) {
      try {
        start();
        return;
      } catch (const std::runtime_error&) {
        if (attempt == 5 || log_tail().find("address already in use") == std::string::npos) {
          throw;
        }
        std::filesystem::remove_all(dir_ / "data");
      }
    }
  }

  ~etcd_process() { kill(); }
  etcd_process(const etcd_process&) = delete;
  etcd_process& operator=(const etcd_process&) = delete;

  const std::string& port() const { return client_port_; }

 private:
  void start() {
    client_port_ = std::to_string(free_loopback_port());
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(free_loopback_port());
    const std::string client_url =
        std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + client_port_;
    std::vector<std::string> args = {
        etcd_program,
        "--name=porthole-test",
        "--data-dir=" + (dir_ / "data").string(),
        "--listen-client-urls=" + client_url,
        "--advertise-client-urls=" + client_url,
        "--listen-peer-urls=" + peer_url,
        "--initial-advertise-peer-urls=" + peer_url,
        "--initial-cluster=porthole-test=" + peer_url,
        // A leader within milliseconds, and a minimum lease TTL of 1 s.
        "--heartbeat-interval=10",
        "--election-timeout=100",
        "--logger=zap",
        "--log-level=warn",
    };
    if (tls_) {
      args.push_back("--cert-file=" + tls_->server_cert.string());
      args.push_back("--key-file=" + tls_->server_key.string());
      args.push_back("--trusted-ca-file=" + tls_->ca_cert.string());
      args.push_back("--client-cert-auth");
    }
    std::vector<char*> argv;
    for (std::string& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = log_path().string();
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int spawned = posix_spawn(&pid_, etcd_program, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      throw std::runtime_error(std::string("cannot start ") + etcd_program + ": " +
                               std::strerror(spawned));
    }
    wait_until_healthy();
  }

 public:
  /// Freezes etcd (SIGSTOP): connections open, nothing answered. Returns
  /// once every thread of etcd is stopped.
  void freeze() {
    ::kill(pid_, SIGSTOP);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!all_threads_stopped() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  /// Kills etcd and waits for it to be gone. Idempotent.
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  /// The last lines of etcd's log, for a failure message.
  std::string log_tail() const {
    std::ifstream in(log_path());
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
      lines.push_back(line);
    }
    std::string tail;
    for (std::size_t i = lines.size() > 20 ? lines.size() - 20 : 0; i < lines.size(); ++i) {
      tail += lines[i] + "\n";
    }
    return tail;
  }

 private:
  std::filesystem::path log_path() const { return dir_ / "etcd.log"; }

  // Whether /proc says every thread of etcd is stopped (state T).
  bool all_threads_stopped() const {
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid_) + "/task";
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream in(task.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      // "pid (comm) S ...": the state follows the last ')'.
      const std::size_t close = stat.rfind(')');
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') {
        return false;
      }
    }
    return !ec;
  }

  // GET /health once: true when etcd answers {"health":"true"}.
  bool healthy() const {
    namespace asio = boost::asio;
    using asio::ip::tcp;
    asio::io_context io;
    boost::system::error_code ec;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                 static_cast<unsigned short>(std::stoi(client_port_))),
                   ec);
    if (ec) {
      return false;
    }
    const std::string request =
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    std::string answer;
    auto exchange = [&](auto& stream) {
      asio::write(stream, asio::buffer(request), ec);
      if (!ec) {
        asio::read(stream, asio::dynamic_buffer(answer), ec);
      }
    };
    if (!tls_) {
      exchange(socket);
    } else {
      asio::ssl::context ctx(asio::ssl::context::tls_client);
      ctx.load_verify_file(tls_->ca_cert.string());
      ctx.use_certificate_chain_file(tls_->client_cert.string());
      ctx.use_private_key_file(tls_->client_key.string(), asio::ssl::context::pem);
      asio::ssl::stream<tcp::socket&> stream(socket, ctx);
      stream.set_verify_mode(asio::ssl::verify_peer);
      stream.handshake(asio::ssl::stream_base::client, ec);
      if (ec) {
        return false;
      }
      exchange(stream);
    }
    return answer.find("\"health\":\"true\"") != std::string::npos;
  }

  void wait_until_healthy() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < give_up) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("etcd exited while starting; its log:\n" + log_tail());
      }
      if (healthy()) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    throw std::runtime_error("etcd did not become healthy within 20 s; its log:\n" + log_tail());
  }

  std::filesystem::path dir_;
  std::optional<etcd_tls_files> tls_;
  std::string client_port_;
  pid_t pid_ = -1;
};

}  // namespace porthole::testing
