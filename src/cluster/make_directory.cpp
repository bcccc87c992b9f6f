#include "cluster/make_directory.h"

#include <boost/asio/io_context.hpp>

#include "cluster/etcd_client.h"
#include "cluster/etcd_directory.h"
#include "cluster/etcd_token_source.h"
#include "cluster/etcd_tokens.h"

namespace porthole::cluster {

etcd_options etcd_options_for(const server::cluster_config& c) {
  etcd_options o = parse_cluster_url(c.etcd);
  if (o.tls) {
    o.ca_file = c.ca;
    o.cert_file = c.cert;
    o.key_file = c.key;
  }
  return o;
}

std::string tokens_location(const server::cluster_config& c) {
  const std::string prefix = c.prefix.ends_with('/') ? c.prefix : c.prefix + "/";
  return c.etcd + " (keys " + prefix + "tokens/)";
}

std::shared_ptr<server::directory> make_etcd_directory(net::asio::any_io_executor ex,
                                                       const server::cluster_config& c) {
  const etcd_options o = etcd_options_for(c);
  auto etcd = std::make_shared<etcd_client>(ex, o);
  etcd_directory::options d;
  d.lease_ttl = c.lease_ttl;
  d.prefix = c.prefix;
  d.request_timeout = o.request_timeout;
  return std::make_shared<etcd_directory>(ex, std::move(etcd), std::move(d));
}

std::shared_ptr<server::token_source> make_etcd_token_source(net::asio::any_io_executor ex,
                                                             const server::cluster_config& c) {
  const etcd_options o = etcd_options_for(c);
  token_listing first;
  {
    net::asio::io_context io;
    etcd_tokens now(std::make_shared<etcd_client>(io.get_executor(), o), c.prefix);
    auto read = run_to_end(io, now.list());
    if (!read) {
      throw std::runtime_error("cannot read the cluster's authtokens from etcd (" + c.etcd +
                               "): " + read.error->message);
    }
    first = std::move(read.value);
  }
  auto source =
      std::make_shared<etcd_token_source>(ex, std::make_shared<etcd_client>(ex, o), c.prefix,
                                          tokens_location(c), etcd_token_source::options{});
  source->start(std::move(first));
  return source;
}

}  // namespace porthole::cluster
