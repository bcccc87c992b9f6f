#include "proto/error.h"

#include <string>

namespace porthole::proto {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "porthole.proto"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::frame_too_large:
        return "frame length exceeds the limit";
      case error::bad_length:
        return "frame length is zero or negative";
      case error::invalid_json:
        return "frame body is not a JSON object";
      case error::missing_type:
        return "message has no Type";
      case error::unknown_type:
        return "unknown message Type";
      case error::bad_payload:
        return "message Payload has a field of the wrong type";
      case error::unexpected_message:
        return "message not allowed here";
    }
    return "unknown protocol error";
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace porthole::proto
