#pragma once
// Giving freed memory back to the system. glibc returns only the top of its
// heap by itself; after a burst of connections the freed middle stays
// resident. A periodic trim keeps the resident size near what is live.

#include <chrono>

#include "net/stream.h"

namespace porthole::net {

/// Trims the heap every `interval` until the executor's context stops.
void start_memory_trim(const asio::any_io_executor& ex, std::chrono::seconds interval);

}  // namespace porthole::net
