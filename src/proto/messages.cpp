#include "proto/messages.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "proto/error.h"
#include "proto/frame.h"

namespace porthole::proto {
namespace {

using json = nlohmann::json;
// Output keeps the order fields are written in, which is Go's field order:
// porthole's frames read like ngrok's own.
using ordered = nlohmann::ordered_json;

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// Finds a key as Go's encoding/json does: an exact match first, then any
// case-insensitive one.
const json* find_key(const json& object, std::string_view key) {
  if (auto it = object.find(key); it != object.end()) {
    return &*it;
  }
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (iequals(it.key(), key)) {
      return &*it;
    }
  }
  return nullptr;
}

// Reads one payload object field by field; the first mismatch is remembered.
class payload_reader {
 public:
  explicit payload_reader(const json& object) : object_(object) {}

  std::string string(std::string_view key) {
    const json* v = find_key(object_, key);
    if (v == nullptr || v->is_null()) {
      return {};
    }
    if (!v->is_string()) {
      ok_ = false;
      return {};
    }
    return v->get<std::string>();
  }

  std::uint16_t port(std::string_view key) {
    const json* v = find_key(object_, key);
    if (v == nullptr || v->is_null()) {
      return 0;
    }
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0 || v->get<std::int64_t>() > 65535) {
      ok_ = false;
      return 0;
    }
    return static_cast<std::uint16_t>(v->get<std::int64_t>());
  }

  static constexpr std::size_t max_nodes = 64;
  static constexpr std::size_t max_node_addr = 255;

  // The extension object is advisory: a malformed one is ignored rather than
  // failing the whole message, so a future peer cannot break an older one.
  std::optional<extensions> ext() {
    const json* v = find_key(object_, "Porthole");
    if (v == nullptr || !v->is_object()) {
      return std::nullopt;
    }
    extensions e;
    if (const json* ver = find_key(*v, "Version"); ver != nullptr && ver->is_string()) {
      e.version = ver->get<std::string>();
    }
    if (const json* p = find_key(*v, "PoolSize"); p != nullptr && p->is_number_integer()) {
      const auto n = p->get<std::int64_t>();
      if (n >= 0 && n <= 100000) {
        e.pool_size = static_cast<int>(n);
      }
    }
    if (const json* f = find_key(*v, "Features"); f != nullptr && f->is_array()) {
      for (const json& name : *f) {
        if (name.is_string()) {
          e.features.push_back(name.get<std::string>());
        }
      }
    }
    if (const json* n = find_key(*v, "Nodes"); n != nullptr && n->is_array()) {
      for (const json& addr : *n) {
        if (addr.is_string() && addr.get_ref<const std::string&>().size() <= max_node_addr &&
            e.nodes.size() < max_nodes) {
          e.nodes.push_back(addr.get<std::string>());
        }
      }
    }
    if (const json* n = find_key(*v, "Node");
        n != nullptr && n->is_string() &&
        n->get_ref<const std::string&>().size() <= max_node_addr) {
      e.node = n->get<std::string>();
    }
    if (const json* sb = find_key(*v, "Standby"); sb != nullptr && sb->is_boolean()) {
      e.standby = sb->get<bool>();
    }
    return e;
  }

  bool ok() const { return ok_; }

 private:
  const json& object_;
  bool ok_ = true;
};

ordered encode_ext(const extensions& e) {
  ordered j = {{"Version", e.version}, {"Features", e.features}};
  if (e.pool_size) {
    j["PoolSize"] = *e.pool_size;
  }
  if (!e.nodes.empty()) {
    j["Nodes"] = e.nodes;
  }
  if (!e.node.empty()) {
    j["Node"] = e.node;
  }
  if (e.standby) {
    j["Standby"] = true;
  }
  return j;
}

struct payload_encoder {
  ordered operator()(const auth& m) const {
    ordered j = {{"Version", m.version},
                 {"MmVersion", m.mm_version},
                 {"User", m.user},
                 {"Password", m.password},
                 {"OS", m.os},
                 {"Arch", m.arch},
                 {"ClientId", m.client_id}};
    if (m.ext) {
      j["Porthole"] = encode_ext(*m.ext);
    }
    return j;
  }
  ordered operator()(const auth_resp& m) const {
    ordered j = {{"Version", m.version},
                 {"MmVersion", m.mm_version},
                 {"ClientId", m.client_id},
                 {"Error", m.error}};
    if (m.ext) {
      j["Porthole"] = encode_ext(*m.ext);
    }
    return j;
  }
  ordered operator()(const req_tunnel& m) const {
    return {{"ReqId", m.req_id},        {"Protocol", m.protocol},  {"Hostname", m.hostname},
            {"Subdomain", m.subdomain}, {"HttpAuth", m.http_auth}, {"RemotePort", m.remote_port}};
  }
  ordered operator()(const new_tunnel& m) const {
    return {{"ReqId", m.req_id}, {"Url", m.url}, {"Protocol", m.protocol}, {"Error", m.error}};
  }
  ordered operator()(const req_proxy&) const { return ordered::object(); }
  ordered operator()(const reg_proxy& m) const { return {{"ClientId", m.client_id}}; }
  ordered operator()(const start_proxy& m) const {
    ordered o = {{"Url", m.url}, {"ClientAddr", m.client_addr}};
    if (!m.proto.empty()) {
      o["Proto"] = m.proto;
    }
    return o;
  }
  ordered operator()(const ping&) const { return ordered::object(); }
  ordered operator()(const pong&) const { return ordered::object(); }
  ordered operator()(const reg_mux& m) const { return {{"ClientId", m.client_id}}; }
  ordered operator()(const close_tunnel& m) const { return {{"Url", m.url}}; }
  ordered operator()(const promote&) const { return ordered::object(); }
};

boost::system::result<message> decode_payload(std::string_view type, const json& p) {
  payload_reader r(p);
  message m;
  if (type == "Auth") {
    m = auth{r.string("Version"), r.string("MmVersion"), r.string("User"),     r.string("Password"),
             r.string("OS"),      r.string("Arch"),      r.string("ClientId"), r.ext()};
  } else if (type == "AuthResp") {
    m = auth_resp{r.string("Version"), r.string("MmVersion"), r.string("ClientId"),
                  r.string("Error"), r.ext()};
  } else if (type == "ReqTunnel") {
    m = req_tunnel{r.string("ReqId"),     r.string("Protocol"), r.string("Hostname"),
                   r.string("Subdomain"), r.string("HttpAuth"), r.port("RemotePort")};
  } else if (type == "NewTunnel") {
    m = new_tunnel{r.string("ReqId"), r.string("Url"), r.string("Protocol"), r.string("Error")};
  } else if (type == "ReqProxy") {
    m = req_proxy{};
  } else if (type == "RegProxy") {
    m = reg_proxy{r.string("ClientId")};
  } else if (type == "StartProxy") {
    m = start_proxy{r.string("Url"), r.string("ClientAddr"), r.string("Proto")};
  } else if (type == "Ping") {
    m = ping{};
  } else if (type == "Pong") {
    m = pong{};
  } else if (type == "RegMux") {
    m = reg_mux{r.string("ClientId")};
  } else if (type == "CloseTunnel") {
    m = close_tunnel{r.string("Url")};
  } else if (type == "Promote") {
    m = promote{};
  } else {
    return error::unknown_type;
  }
  if (!r.ok()) {
    return error::bad_payload;
  }
  return m;
}

}  // namespace

std::string_view type_name(const message& m) {
  static constexpr std::string_view names[] = {"Auth",     "AuthResp", "ReqTunnel",   "NewTunnel",
                                               "ReqProxy", "RegProxy", "StartProxy",  "Ping",
                                               "Pong",     "RegMux",   "CloseTunnel", "Promote"};
  static_assert(std::size(names) == std::variant_size_v<message>);
  return names[m.index()];
}

boost::system::result<message> decode(std::string_view text) {
  json envelope = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (envelope.is_discarded() || !envelope.is_object()) {
    return error::invalid_json;
  }
  const json* type = find_key(envelope, "Type");
  if (type == nullptr || !type->is_string()) {
    return error::missing_type;
  }
  const json* payload = find_key(envelope, "Payload");
  static const json empty = json::object();
  if (payload == nullptr || payload->is_null()) {
    payload = &empty;
  }
  if (!payload->is_object()) {
    return error::bad_payload;
  }
  return decode_payload(type->get_ref<const std::string&>(), *payload);
}

std::string encode(const message& m) {
  ordered envelope = {{"Type", type_name(m)}, {"Payload", std::visit(payload_encoder{}, m)}};
  return envelope.dump();
}

std::string encode_framed(const message& m) {
  return encode_frame(encode(m));
}

namespace {

constexpr std::string_view start_proxy_head = R"({"Type":"StartProxy","Payload":{"Url":")";
constexpr std::string_view start_proxy_middle = R"(","ClientAddr":")";
constexpr std::string_view start_proxy_tail = R"("}})";

/// True if JSON writes `s` between quotes as it is: no quote, backslash,
/// control character, and only ASCII (the dump of anything else is decode()'s
/// and encode()'s business).
bool plain_json_string(std::string_view s) {
  return std::ranges::all_of(s, [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
  });
}

}  // namespace

std::string encode_start_proxy(const start_proxy& m) {
  if (!plain_json_string(m.url) || !plain_json_string(m.client_addr) || !m.proto.empty()) {
    return encode(m);
  }
  std::string out;
  out.reserve(start_proxy_head.size() + m.url.size() + start_proxy_middle.size() +
              m.client_addr.size() + start_proxy_tail.size());
  out += start_proxy_head;
  out += m.url;
  out += start_proxy_middle;
  out += m.client_addr;
  out += start_proxy_tail;
  return out;
}

std::optional<start_proxy> decode_start_proxy(std::string_view json) {
  if (!json.starts_with(start_proxy_head) || !json.ends_with(start_proxy_tail)) {
    return std::nullopt;
  }
  json.remove_prefix(start_proxy_head.size());
  json.remove_suffix(start_proxy_tail.size());
  const std::size_t middle = json.find(start_proxy_middle);
  if (middle == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view url = json.substr(0, middle);
  const std::string_view client_addr = json.substr(middle + start_proxy_middle.size());
  if (!plain_json_string(url) || !plain_json_string(client_addr)) {
    return std::nullopt;
  }
  return start_proxy{std::string(url), std::string(client_addr)};
}

}  // namespace porthole::proto
