#include "net/memory.h"

#include <malloc.h>

#include <boost/asio/steady_timer.hpp>
#include <memory>

namespace porthole::net {
namespace {

void arm(std::shared_ptr<asio::steady_timer> timer, std::chrono::seconds interval) {
  timer->expires_after(interval);
  timer->async_wait([timer, interval](const error_code& ec) {
    if (ec) {
      return;
    }
    malloc_trim(0);
    arm(timer, interval);
  });
}

}  // namespace

void start_memory_trim(const asio::any_io_executor& ex, std::chrono::seconds interval) {
  arm(std::make_shared<asio::steady_timer>(ex), interval);
}

}  // namespace porthole::net
