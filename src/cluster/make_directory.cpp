#include "cluster/make_directory.h"

#include "cluster/etcd_client.h"
#include "cluster/etcd_directory.h"

namespace porthole::cluster {

std::shared_ptr<server::directory> make_etcd_directory(net::asio::any_io_executor ex,
                                                       const server::cluster_config& c) {
  etcd_options o = parse_cluster_url(c.etcd);
  if (o.tls) {
    o.ca_file = c.ca;
    o.cert_file = c.cert;
    o.key_file = c.key;
  }
  auto etcd = std::make_shared<etcd_client>(ex, o);
  etcd_directory::options d;
  d.lease_ttl = c.lease_ttl;
  d.prefix = c.prefix;
  d.request_timeout = o.request_timeout;
  return std::make_shared<etcd_directory>(ex, std::move(etcd), std::move(d));
}

}  // namespace porthole::cluster
