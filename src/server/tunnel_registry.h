#pragma once
// Which client owns which public URL. Kept behind this small interface so
// that several portholed servers can later share one registry (in Redis);
// the in-memory one serves a single server.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::server {

class tunnel_registry {
 public:
  using clock = std::chrono::steady_clock;

  virtual ~tunnel_registry() = default;

  /// Claims `url` for `client_id`. Succeeds if the URL is free, already the
  /// client's, or held for the client after a disconnect; fails if another
  /// client holds it (live, or within its grace period).
  virtual bool claim(std::string_view url, std::string_view client_id) = 0;

  /// The client stopped serving `url` and keeps it reserved until `hold_until`
  /// (the reconnect grace period); pass clock::now() to free it at once.
  virtual void release(std::string_view url, std::string_view client_id,
                       clock::time_point hold_until) = 0;

  /// URLs of `client_id` held after a disconnect (not live), for reuse when it
  /// asks for a tunnel without naming one.
  virtual std::vector<std::string> held_by(std::string_view client_id) = 0;

  /// True if `url` is held for a client that disconnected and may come back.
  virtual bool is_held(std::string_view url) = 0;
};

/// A registry for one server process.
class in_memory_registry final : public tunnel_registry {
 public:
  bool claim(std::string_view url, std::string_view client_id) override;
  void release(std::string_view url, std::string_view client_id,
               clock::time_point hold_until) override;
  std::vector<std::string> held_by(std::string_view client_id) override;
  bool is_held(std::string_view url) override;

 private:
  struct entry {
    std::string client_id;
    std::optional<clock::time_point> held_until;  ///< set while not live

    bool expired(clock::time_point now) const { return held_until && *held_until <= now; }
  };
  std::map<std::string, entry, std::less<>> entries_;
};

}  // namespace porthole::server
