#pragma once
// Errors of the ngrok 1.x wire protocol, as an error_code category.

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace porthole::proto {

/// Why a frame or a message was refused.
enum class error {
  frame_too_large = 1,  ///< the length prefix exceeds the bound for this connection
  bad_length,           ///< the length prefix is zero or negative
  invalid_json,         ///< the body is not a JSON object
  missing_type,         ///< the envelope has no string "Type"
  unknown_type,         ///< "Type" names no message of the protocol
  bad_payload,          ///< "Payload" is not an object, or a field has the wrong JSON type
  unexpected_message,   ///< a valid message arrived where the protocol does not allow it
};

/// The category of porthole::proto::error.
const boost::system::error_category& error_category() noexcept;

/// Makes an error_code from a protocol error.
inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace porthole::proto

template <>
struct boost::system::is_error_code_enum<porthole::proto::error> : std::true_type {};
