#pragma once
// What both ends of porthole's HTTP/2 (public side in portholed, upstream side
// in porthole) hand to nghttp2: header lists, and a message body that
// nghttp2 sends as it arrives, trailers after it.

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message_parser.h"

namespace porthole::http {

/// Name-value pairs for nghttp2, which copies them (NGHTTP2_NV_FLAG_NONE):
/// the strings need only outlive the submit call.
class h2_header_list {
 public:
  void add(std::string_view name, std::string_view value);
  const nghttp2_nv* data() const { return nva_.data(); }
  std::size_t size() const { return nva_.size(); }

 private:
  std::vector<nghttp2_nv> nva_;
};

/// A body nghttp2 sends as its bytes arrive: the source of a data provider.
/// nghttp2 takes what the peer's window allows and waits (deferred) when
/// nothing is there; resume() wakes it when bytes or the end come.
struct h2_outgoing_body {
  std::int32_t stream_id = -1;
  std::string bytes;             ///< the front `sent` bytes are already taken
  std::size_t sent = 0;
  bool ended = false;            ///< every byte of the body is in `bytes`
  std::vector<field> trailers;   ///< sent after the body (names lower case)
  bool deferred = false;         ///< nghttp2 waits for resume()
  std::function<void()> on_taken;  ///< nghttp2 took bytes: there is room for more

  /// Bytes not yet taken by nghttp2.
  std::size_t pending() const { return bytes.size() - sent; }

  /// A data provider reading this body (which must outlive its stream).
  nghttp2_data_provider provider();

  /// Tells nghttp2 that bytes or the end came while it waited; true if it
  /// was waiting (the session then has something to send).
  bool resume(nghttp2_session* session);
};

/// Appends what `session` has to send to `out`, until `out` holds `limit`
/// bytes or the session has nothing more; false if the session failed (it
/// can send nothing more).
bool take_output(nghttp2_session* session, std::string& out, std::size_t limit);

/// `s` in lower case (HTTP/2 field names).
std::string lower_case(std::string_view s);

}  // namespace porthole::http
