#include "cluster/etcd_token_store.h"

#include <boost/asio/io_context.hpp>
#include <stdexcept>

#include "cluster/etcd_tokens.h"
#include "cluster/make_directory.h"

namespace porthole::cluster {

struct etcd_token_store::impl {
  explicit impl(const server::cluster_config& c)
      : url(c.etcd),
        location(tokens_location(c)),
        tokens(std::make_shared<etcd_client>(io.get_executor(), etcd_options_for(c)), c.prefix) {}

  template <class T>
  T answer(net::asio::awaitable<etcd_result<T>> call) {
    etcd_result<T> r = run_to_end(io, std::move(call));
    if (!r) {
      throw std::runtime_error((r.error->unavailable ? "cannot reach etcd at " : "etcd at ") + url +
                               ": " + r.error->message);
    }
    return std::move(r.value);
  }

  std::string url;
  std::string location;
  net::asio::io_context io;
  etcd_tokens tokens;
};

etcd_token_store::etcd_token_store(const server::cluster_config& c)
    : impl_(std::make_unique<impl>(c)) {}

etcd_token_store::~etcd_token_store() = default;

std::pair<std::string, server::token_record> etcd_token_store::add(
    const server::token_request& req) {
  return impl_->answer(impl_->tokens.add(req));
}

std::vector<server::token_record> etcd_token_store::list() {
  return impl_->answer(impl_->tokens.list()).snapshot.tokens;
}

bool etcd_token_store::revoke(std::int64_t id) {
  return impl_->answer(impl_->tokens.revoke(id));
}

const std::string& etcd_token_store::where() const {
  return impl_->location;
}

}  // namespace porthole::cluster
