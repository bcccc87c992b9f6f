#pragma once
// The directory of a cluster node, for the composition root: the etcd client
// and the directory on it, without their headers.

#include <memory>

#include "net/stream.h"
#include "server/config.h"
#include "server/directory.h"

namespace porthole::cluster {

/// The etcd-backed directory for `c` (c.enabled()). Throws std::runtime_error
/// naming the problem (a bad --cluster URL, a TLS file that cannot be read).
std::shared_ptr<server::directory> make_etcd_directory(net::asio::any_io_executor ex,
                                                       const server::cluster_config& c);

}  // namespace porthole::cluster
