#pragma once
// What the status screen shows, gathered as it happens: the agent's state,
// its tunnels, its connections and the last HTTP requests. Written from the
// agent's thread (and any thread that logs), read by the screen's thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/agent_observer.h"

namespace spdlog::sinks {
class sink;
}

namespace porthole::term {

using steady_clock = std::chrono::steady_clock;

/// The connection to the server, as the status line says it.
enum class link_state {
  connecting,    ///< dialing the server, before it first accepted the client
  online,        ///< the server accepted the client
  reconnecting,  ///< the connection was lost (or never made); trying again
  offline,       ///< given up for good (a refused authtoken, an untrusted certificate)
};

/// One public URL and what it forwards to.
struct forwarding_row {
  std::string url;    ///< e.g. "https://blog.example.com"
  std::string local;  ///< e.g. "localhost:4000"
  std::string name;   ///< the tunnel's name
};

/// A tunnel the server refused.
struct refused_row {
  std::string name;
  std::string protocol;
  std::string error;  ///< as the server said it
};

/// One HTTP exchange, as the request list shows it.
struct request_row {
  std::string method;
  std::string target;
  int status = 0;  ///< 0: no response (see error)
  std::string reason;
  std::chrono::microseconds duration{0};
  std::string error;
  /// "h2" when the public client spoke HTTP/2 (the tunnel carried HTTP/1.1).
  std::string protocol{};
};

/// A warning or error the log reported.
struct problem_row {
  std::chrono::system_clock::time_point when;
  std::string text;
};

/// Everything on the screen at one moment.
struct status_snapshot {
  link_state state = link_state::connecting;
  std::string offline_reason;
  steady_clock::time_point retry_at{};  ///< when state is reconnecting
  std::string client_version;
  std::string server_version;  ///< empty until the server said it
  std::vector<forwarding_row> forwarding;
  std::vector<refused_row> refused;
  std::string web_interface;  ///< e.g. "http://127.0.0.1:4040"; empty: none
  std::uint64_t open_connections = 0;
  std::uint64_t total_connections = 0;
  std::uint64_t total_requests = 0;
  double requests_per_second = 0;     ///< over the last minute (or since the start, if shorter)
  std::vector<request_row> requests;  ///< newest first
  std::optional<problem_row> last_problem;
};

/// The agent's observer that the screen reads. All members are thread-safe.
class status_board final : public client::agent_observer {
 public:
  /// The request list keeps this many (a screen shows as many as fit).
  static constexpr std::size_t kept_requests = 256;

  /// `now` is the clock for rates (tests pass their own).
  explicit status_board(std::string client_version,
                        std::function<steady_clock::time_point()> now = &steady_clock::now);

  /// Called, on whatever thread made the change, when something changed since
  /// the last snapshot (not for every change: once until the next snapshot).
  /// It runs under the board's lock: it must return at once and not call the
  /// board. Once on_change returns, the callback it replaced runs no more.
  void on_change(std::function<void()> callback);

  /// Called once, on the agent's thread, as the first public connection opens.
  void on_first_connection(std::function<void()> callback);

  void set_web_interface(std::string url);
  /// The agent gave up: the status says "offline: <reason>".
  void set_offline(std::string reason);
  /// A warning or error to show (see problem_sink).
  void note_problem(std::string text);

  /// What to draw now.
  status_snapshot snapshot();

  // agent_observer
  void connecting() override;
  void online(const std::string& server_version) override;
  void reconnecting(steady_clock::time_point retry_at) override;
  void tunnels_changed(const std::vector<client::live_tunnel>& up) override;
  void tunnel_refused(const client::tunnel_spec& t, const std::string& error) override;
  void connection_opened() override;
  void connection_closed() override;
  void exchange_done(const inspect::exchange& e) override;

 private:
  // Makes `change` under the lock, then tells of it if the screen has seen
  // everything before it. Under the lock too, so that no call is still
  // running once on_change(nullptr) has returned.
  template <class Change>
  void update(Change&& change) {
    std::lock_guard lock(mutex_);
    change();
    if (!dirty_ && on_change_) {
      on_change_();
    }
    dirty_ = true;
  }

  std::function<steady_clock::time_point()> now_;
  const steady_clock::time_point started_;

  mutable std::mutex mutex_;  // guards everything below
  status_snapshot state_;
  std::deque<request_row> requests_;
  /// Requests per second of the last minute: [second % 60] = {second, count}.
  std::array<std::pair<std::int64_t, std::uint32_t>, 60> per_second_{};
  bool dirty_ = true;
  std::function<void()> on_change_;
  std::function<void()> on_first_connection_;
};

/// A log sink that shows warnings and errors on the board (and keeps it).
std::shared_ptr<spdlog::sinks::sink> problem_sink(std::shared_ptr<status_board> board);

}  // namespace porthole::term
