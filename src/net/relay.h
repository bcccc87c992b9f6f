#pragma once
// Copies bytes both ways between a connection's near side (a public or local
// TCP socket) and its tunnel side (a channel), until both directions are done.
//  - near side EOF: the tunnel side is told (a half-close where the channel
//    can carry one); the other direction keeps flowing, so a client that
//    half-closed still gets its answer. Where the channel cannot half-close,
//    `near_eof_ends` decides: end everything (the ngrok 1.x way, right for a
//    local service whose EOF ends its answer), or keep the tunnel's bytes
//    flowing to the near side (right for a public client).
//  - tunnel side EOF: the near side's sending half is shut down; where the
//    channel cannot half-close, the relay ends.
//  - any error: both are closed.
// An idle time-out ends a relay in which nothing moved for that long.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/channel.h"
#include "net/stream.h"

namespace porthole::net {

/// Bytes moved by one relay, for logs.
struct relay_totals {
  std::uint64_t near_to_tunnel = 0;
  std::uint64_t tunnel_to_near = 0;
};

/// Sees the bytes a relay moves, as they move (to capture HTTP exchanges). It
/// must not block or throw: it runs on the relay's thread, between a read and
/// the matching write.
class relay_observer {
 public:
  virtual ~relay_observer() = default;
  virtual void to_near(std::string_view bytes) noexcept = 0;    ///< tunnel -> near side
  virtual void to_tunnel(std::string_view bytes) noexcept = 0;  ///< near side -> tunnel
};

/// Relays until done. `initial_to_near` are tunnel bytes read before.
/// `observer`, if given, must outlive the relay.
asio::awaitable<relay_totals> relay(tcp::socket& near, channel& tunnel, std::string initial_to_near,
                                    std::chrono::steady_clock::duration idle, bool near_eof_ends,
                                    relay_observer* observer = nullptr);

/// The same with any channel as the near side (a relayed connection between
/// portholed nodes, a public TLS connection handed to another node). The
/// near side half-closes only if it can.
asio::awaitable<relay_totals> relay(channel& near, channel& tunnel, std::string initial_to_near,
                                    std::chrono::steady_clock::duration idle, bool near_eof_ends,
                                    relay_observer* observer = nullptr);

}  // namespace porthole::net
