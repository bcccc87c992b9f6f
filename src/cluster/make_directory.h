#pragma once
// The cluster parts of a node, for the composition root: the directory of
// names and the token source on etcd, without their headers.

#include <memory>
#include <string>

#include "net/stream.h"
#include "server/config.h"
#include "server/directory.h"
#include "server/token_source.h"

namespace porthole::cluster {

struct etcd_options;

/// How to reach the etcd of cluster `c`: its --cluster URL and, with
/// etcds://, the cluster CA and the node's certificate and key. Throws
/// std::runtime_error for a bad URL.
etcd_options etcd_options_for(const server::cluster_config& c);

/// "etcd://HOST:PORT (keys /prefix/tokens/)": where a cluster's tokens are,
/// for messages and log lines.
std::string tokens_location(const server::cluster_config& c);

/// The etcd-backed directory for `c` (c.enabled()). Throws std::runtime_error
/// naming the problem (a bad --cluster URL, a TLS file that cannot be read).
std::shared_ptr<server::directory> make_etcd_directory(net::asio::any_io_executor ex,
                                                       const server::cluster_config& c);

/// The authtokens of cluster `c`, read now (before the loop of `ex` runs:
/// the node accepts nobody before it knows them) and followed from then on,
/// on `ex`. Throws std::runtime_error naming etcd when they cannot be read.
std::shared_ptr<server::token_source> make_etcd_token_source(net::asio::any_io_executor ex,
                                                             const server::cluster_config& c);

}  // namespace porthole::cluster
