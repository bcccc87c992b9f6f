#pragma once
// Errors of dialing and of the HTTP CONNECT exchange, as an error_code category.

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace porthole::net {

/// Why a connection could not be dialed.
enum class error {
  proxy_refused = 1,  ///< the proxy answered CONNECT with a status other than 2xx
  bad_proxy_reply,    ///< the proxy's reply is not an HTTP/1.x response head within the bound
  timed_out,          ///< resolving, connecting or the proxy exchange outlasted the time-out
};

/// The category of porthole::net::error.
const boost::system::error_category& error_category() noexcept;

/// Makes an error_code from a dialing error.
inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace porthole::net

template <>
struct boost::system::is_error_code_enum<porthole::net::error> : std::true_type {};
