#pragma once
// An http tunnel with `upstream: http2`: the HTTP/1.1 requests that arrive on
// the tunnel go to the local service as HTTP/2 with prior knowledge (h2c), as
// gRPC services require, and its HTTP/2 responses come back as HTTP/1.1
// (trailers in a chunked body, docs/PROTOCOL.md "HTTP/2"). Request and
// response bodies stream both ways at once; each side's flow control holds
// the other back, so nothing is buffered without bound.

#include <string>

#include "client/local_http.h"

namespace porthole::client {

/// Serves `tunnel` until it ends, on one HTTP/2 connection to the local
/// service dialled for it. Requests on the tunnel are taken one at a time.
/// If the local service cannot be reached, or gives no answer before its
/// connection ends, the public client gets a 502 page. `observer` (capture),
/// if given, sees each exchange as HTTP/1.1, as it went over the tunnel.
net::asio::awaitable<local_http_totals> forward_h2(net::channel& tunnel, local_http_target target,
                                                   std::string initial = {},
                                                   http_observer* observer = nullptr);

}  // namespace porthole::client
