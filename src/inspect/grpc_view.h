#pragma once
// What the inspector shows of a gRPC exchange: its messages as gRPC frames
// them (a flag byte and a 4-byte length before each), and the call's status
// from the trailers (or the head of a trailers-only response). Pure.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "inspect/exchange.h"

namespace porthole::inspect {

/// One length-prefixed gRPC message.
struct grpc_message {
  bool compressed = false;
  std::uint32_t length = 0;
  bool whole = true;  ///< false for the last one when the capture ends inside it

  friend bool operator==(const grpc_message&, const grpc_message&) = default;
};

/// A gRPC body's messages, and for a response the call's outcome.
struct grpc_view {
  std::vector<grpc_message> messages;
  std::optional<std::string> status;   ///< grpc-status ("0" is OK)
  std::optional<std::string> message;  ///< grpc-message, as sent (percent-encoded)
};

/// True if `headers` say the message is gRPC (content-type application/grpc
/// or application/grpc+...).
bool is_grpc(const header_list& headers);

/// The trailer fields of a captured chunked body ("" names none); empty if
/// the body is not chunked, has none, or was cut before them.
header_list chunked_trailers(const header_list& headers, const captured_body& body);

/// The gRPC view of a message (`headers` its head's fields, `body` as
/// captured), or nullopt if it is not gRPC.
std::optional<grpc_view> grpc_of(const header_list& headers, const captured_body& body);

}  // namespace porthole::inspect
