#pragma once
// Captured exchanges as the inspector's JSON API shows them.

#include <nlohmann/json_fwd.hpp>

#include "inspect/exchange.h"

namespace porthole::inspect {

/// One exchange: ids, timing, request and response heads (headers as
/// {name: [values]}), each body's size and whether it was cut, and, with
/// `bodies`, the bytes kept ("captured", base64 "raw_base64" as sent) and,
/// when it decodes to text, its decoded form. Without `bodies`, `e` may come
/// from a list read without them.
nlohmann::json to_json(const exchange& e, bool bodies);

}  // namespace porthole::inspect
