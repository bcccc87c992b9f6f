#pragma once
// Captured exchanges as the inspector's JSON API shows them.

#include <nlohmann/json_fwd.hpp>

#include "inspect/exchange.h"

namespace porthole::inspect {

/// One exchange: ids, timing, request and response heads (headers as
/// {name: [values]}), and, with `bodies`, each body's captured bytes (base64,
/// as sent) and, when it decodes to text, its decoded form.
nlohmann::json to_json(const exchange& e, bool bodies);

}  // namespace porthole::inspect
