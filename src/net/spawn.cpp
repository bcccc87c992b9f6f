#include "net/spawn.h"

#include <spdlog/spdlog.h>

#include <boost/system/system_error.hpp>

namespace porthole::net {

void log_escaped(std::exception_ptr e, const std::string& what) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& err) {
    if (err.code() != asio::error::operation_aborted) {
      spdlog::error("{}: {}", what, err.what());
    }
  } catch (const std::exception& err) {
    spdlog::error("{}: unexpected error: {}", what, err.what());
  } catch (...) {
    spdlog::error("{}: unexpected error of unknown type", what);
  }
}

}  // namespace porthole::net
