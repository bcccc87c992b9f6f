#pragma once
// The web inspector on the client's local API: the page, the captured
// exchanges as JSON (list, detail, bodies, curl, HAR), replay, and live
// updates as server-sent events.

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <memory>

#include "client/agent.h"
#include "client/local_api.h"
#include "inspect/capture_writer.h"

namespace porthole::client {

/// Registers the inspector's routes on `api` and keeps its event stream fed.
/// Every member runs on the io_context's thread. Destroy it before `api`,
/// `agent` and the io_context; `captures` may outlive it.
class inspector {
 public:
  /// `body_limit` bounds the bodies a replay captures, as for the tunnels.
  inspector(boost::asio::io_context& io, local_api& api, agent& agent,
            std::shared_ptr<inspect::capture_writer> captures, std::size_t body_limit);
  ~inspector();
  inspector(const inspector&) = delete;
  inspector& operator=(const inspector&) = delete;

 private:
  struct state;
  std::shared_ptr<state> state_;  // shared with callbacks that may run after *this is gone
};

}  // namespace porthole::client
