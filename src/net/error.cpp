#include "net/error.h"

#include <string>

namespace porthole::net {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "porthole.net"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::proxy_refused:
        return "the HTTP proxy refused the CONNECT request";
      case error::bad_proxy_reply:
        return "the HTTP proxy sent a malformed reply to CONNECT";
      case error::timed_out:
        return "connecting timed out";
    }
    return "unknown dialing error";
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace porthole::net
