#include "cluster/etcd_json.h"

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <variant>

#include "http/base64.h"

namespace porthole::cluster {
namespace {

using json = nlohmann::json;

// gRPC's status code for "the service cannot serve now".
constexpr int grpc_unavailable = 14;
// How much of a body that is not etcd's goes into an error message.
constexpr std::size_t quoted_body_limit = 200;

std::string int64_text(std::int64_t n) {
  return std::to_string(n);
}

const char* target_name(compare::field f) {
  switch (f) {
    case compare::field::version:
      return "VERSION";
    case compare::field::create_revision:
      return "CREATE";
    case compare::field::mod_revision:
      return "MOD";
    case compare::field::value:
      return "VALUE";
    case compare::field::lease:
      return "LEASE";
  }
  return "VERSION";
}

const char* field_name(compare::field f) {
  switch (f) {
    case compare::field::version:
      return "version";
    case compare::field::create_revision:
      return "create_revision";
    case compare::field::mod_revision:
      return "mod_revision";
    case compare::field::value:
      return "value";
    case compare::field::lease:
      return "lease";
  }
  return "version";
}

const char* relation_name(compare::relation r) {
  switch (r) {
    case compare::equal:
      return "EQUAL";
    case compare::not_equal:
      return "NOT_EQUAL";
    case compare::greater:
      return "GREATER";
    case compare::less:
      return "LESS";
  }
  return "EQUAL";
}

// A key, or a prefix as a key range.
json key_range(std::string_view key, bool prefix) {
  json j = json::object();
  if (prefix && key.empty()) {
    // Every key: from "\0" to the end.
    j["key"] = http::base64(std::string_view("\0", 1));
  } else {
    j["key"] = http::base64(key);
  }
  if (prefix) {
    j["range_end"] = http::base64(prefix_range_end(key));
  }
  return j;
}

json put_request(std::string_view key, std::string_view value, std::int64_t lease) {
  json j = json::object();
  j["key"] = http::base64(key);
  j["value"] = http::base64(value);
  if (lease != 0) {
    j["lease"] = int64_text(lease);
  }
  return j;
}

json request_op(const op& o) {
  json j = json::object();
  switch (o.type) {
    case op::kind::put:
      j["request_put"] = put_request(o.key, o.value, o.lease);
      break;
    case op::kind::erase:
      j["request_delete_range"] = key_range(o.key, o.prefix);
      break;
    case op::kind::range:
      j["request_range"] = key_range(o.key, o.prefix);
      break;
  }
  return j;
}

// Reads the fields of a decoded answer; the first thing that is not as it
// should be is kept in `problem`, and the getters go on with defaults.
class reader {
 public:
  std::optional<std::string> problem;

  void fail(std::string what) {
    if (!problem) {
      problem = std::move(what);
    }
  }

  // A field that is an object; an absent one is empty (all defaults).
  const json& object(const json& parent, const char* name) {
    const auto it = parent.find(name);
    if (it == parent.end() || it->is_null()) {
      return empty_object();
    }
    if (!it->is_object()) {
      fail(std::string(name) + " is not an object");
      return empty_object();
    }
    return *it;
  }

  // A field that is an array; an absent one is empty.
  const json& array(const json& parent, const char* name) {
    static const json empty = json::array();
    const auto it = parent.find(name);
    if (it == parent.end() || it->is_null()) {
      return empty;
    }
    if (!it->is_array()) {
      fail(std::string(name) + " is not an array");
      return empty;
    }
    return *it;
  }

  // A 64-bit integer, as a JSON string (the gateway's way) or a number.
  std::int64_t int64(const json& parent, const char* name) {
    const auto it = parent.find(name);
    if (it == parent.end() || it->is_null()) {
      return 0;
    }
    if (it->is_number_integer() && !it->is_number_unsigned()) {
      return it->get<std::int64_t>();
    }
    if (it->is_number_unsigned()) {
      const auto n = it->get<std::uint64_t>();
      if (n <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(n);
      }
    } else if (it->is_string()) {
      const auto& text = it->get_ref<const std::string&>();
      std::int64_t n = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) {
        return n;
      }
    }
    fail(std::string(name) + " is not a 64-bit integer");
    return 0;
  }

  bool boolean(const json& parent, const char* name) {
    const auto it = parent.find(name);
    if (it == parent.end() || it->is_null()) {
      return false;
    }
    if (!it->is_boolean()) {
      fail(std::string(name) + " is not a boolean");
      return false;
    }
    return it->get<bool>();
  }

  std::string text(const json& parent, const char* name) {
    const auto it = parent.find(name);
    if (it == parent.end() || it->is_null()) {
      return {};
    }
    if (!it->is_string()) {
      fail(std::string(name) + " is not a string");
      return {};
    }
    return it->get<std::string>();
  }

  // Bytes in base64.
  std::string bytes(const json& parent, const char* name) {
    const std::string encoded = text(parent, name);
    auto decoded = http::from_base64(encoded);
    if (!decoded) {
      fail(std::string(name) + " is not base64");
      return {};
    }
    return std::move(*decoded);
  }

  key_value kv(const json& j) {
    if (!j.is_object()) {
      fail("a key-value is not an object");
      return {};
    }
    return key_value{.key = bytes(j, "key"),
                     .value = bytes(j, "value"),
                     .create_revision = int64(j, "create_revision"),
                     .mod_revision = int64(j, "mod_revision"),
                     .version = int64(j, "version"),
                     .lease = int64(j, "lease")};
  }

  std::vector<key_value> kvs(const json& parent) {
    std::vector<key_value> out;
    for (const json& item : array(parent, "kvs")) {
      out.push_back(kv(item));
    }
    return out;
  }

  std::int64_t header_revision(const json& answer) {
    return int64(object(answer, "header"), "revision");
  }

 private:
  static const json& empty_object() {
    static const json empty = json::object();
    return empty;
  }
};

etcd_error malformed(std::string_view what) {
  return etcd_error{.message = "malformed answer from etcd: " + std::string(what)};
}

// The body, printable and cut short, for an error message.
std::string excerpt(std::string_view body) {
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) {
    body.remove_suffix(1);
  }
  std::string out;
  for (const char c : body.substr(0, quoted_body_limit)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (body.size() > quoted_body_limit) {
    out += "...";
  }
  return out;
}

// etcd's error in an answer, if it is one: {"error": "text", "code": N,
// "message": "text"} (unary) or {"error": {"grpc_code": N, "message":
// "text"}} (stream). A lease grant's own "error" field is a string too.
std::optional<etcd_error> error_in(const json& answer) {
  const auto it = answer.find("error");
  if (it == answer.end() || it->is_null()) {
    return std::nullopt;
  }
  reader r;
  etcd_error error;
  if (it->is_object()) {
    error.message = r.text(*it, "message");
    error.code = static_cast<int>(r.int64(*it, "grpc_code"));
  } else if (it->is_string()) {
    if (it->get_ref<const std::string&>().empty()) {
      return std::nullopt;
    }
    error.message = r.text(answer, "message");
    if (error.message.empty()) {
      error.message = it->get<std::string>();
    }
    error.code = static_cast<int>(r.int64(answer, "code"));
  } else {
    return malformed("error is neither a string nor an object");
  }
  if (error.message.empty()) {
    error.message =
        "etcd answered with an error without a message (code " + std::to_string(error.code) + ")";
  }
  error.unavailable = error.code == grpc_unavailable;
  return error;
}

// The answer as a JSON object, or the error it is or holds.
std::variant<json, etcd_error> parse_answer(std::string_view body) {
  json answer = json::parse(body.begin(), body.end(), nullptr, false);
  if (answer.is_discarded()) {
    return malformed("not JSON: " + excerpt(body));
  }
  if (!answer.is_object()) {
    return malformed("not a JSON object: " + excerpt(body));
  }
  if (auto error = error_in(answer)) {
    return std::move(*error);
  }
  return answer;
}

// Decodes an answer with `read`, which fills a T from the parsed object.
template <class T, class Read>
etcd_result<T> decode(std::string_view body, Read read) {
  auto parsed = parse_answer(body);
  if (auto* error = std::get_if<etcd_error>(&parsed)) {
    return failed<T>(std::move(*error));
  }
  reader r;
  T value = read(r, std::get<json>(parsed));
  if (r.problem) {
    return failed<T>(malformed(*r.problem));
  }
  return etcd_result<T>{std::nullopt, std::move(value)};
}

// The first object of a streaming answer, without its {"result": ...}
// wrapper; or the stream's error.
std::variant<json, etcd_error> first_stream_result(std::string_view body) {
  json_object_splitter splitter(body.size() + 1);
  splitter.feed(body);
  auto next = splitter.next();
  if (next.error) {
    return malformed(*next.error);
  }
  if (!next.object) {
    return malformed("no complete object in: " + excerpt(body));
  }
  auto parsed = parse_answer(*next.object);
  if (auto* error = std::get_if<etcd_error>(&parsed)) {
    return std::move(*error);
  }
  const json& wrapper = std::get<json>(parsed);
  const auto it = wrapper.find("result");
  if (it == wrapper.end() || !it->is_object()) {
    return malformed("a stream object without a result: " + excerpt(*next.object));
  }
  return *it;
}

}  // namespace

compare compare::create_revision(std::string key, relation how, std::int64_t revision) {
  return compare{
      .key = std::move(key), .what = field::create_revision, .how = how, .number = revision};
}

compare compare::mod_revision(std::string key, relation how, std::int64_t revision) {
  return compare{
      .key = std::move(key), .what = field::mod_revision, .how = how, .number = revision};
}

compare compare::version(std::string key, relation how, std::int64_t version) {
  return compare{.key = std::move(key), .what = field::version, .how = how, .number = version};
}

compare compare::value(std::string key, relation how, std::string value) {
  return compare{.key = std::move(key), .what = field::value, .how = how, .text = std::move(value)};
}

compare compare::lease(std::string key, relation how, std::int64_t lease) {
  return compare{.key = std::move(key), .what = field::lease, .how = how, .number = lease};
}

op op::put(std::string key, std::string value, std::int64_t lease) {
  return op{.type = kind::put, .key = std::move(key), .value = std::move(value), .lease = lease};
}

op op::erase(std::string key) {
  return op{.type = kind::erase, .key = std::move(key)};
}

op op::erase_prefix(std::string prefix) {
  return op{.type = kind::erase, .key = std::move(prefix), .prefix = true};
}

op op::range(std::string key) {
  return op{.type = kind::range, .key = std::move(key)};
}

op op::range_prefix(std::string prefix) {
  return op{.type = kind::range, .key = std::move(prefix), .prefix = true};
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string("\0", 1);
}

std::string encode_range(std::string_view key, bool prefix) {
  return key_range(key, prefix).dump();
}

std::string encode_put(std::string_view key, std::string_view value, std::int64_t lease) {
  return put_request(key, value, lease).dump();
}

std::string encode_erase(std::string_view key, bool prefix) {
  return key_range(key, prefix).dump();
}

std::string encode_txn(const std::vector<compare>& compares, const std::vector<op>& success,
                       const std::vector<op>& failure) {
  json j = json::object();
  json& cmp = j["compare"] = json::array();
  for (const compare& c : compares) {
    json item = json::object();
    item["key"] = http::base64(c.key);
    item["target"] = target_name(c.what);
    item["result"] = relation_name(c.how);
    if (c.what == compare::field::value) {
      item["value"] = http::base64(c.text);
    } else {
      item[field_name(c.what)] = int64_text(c.number);
    }
    cmp.push_back(std::move(item));
  }
  json& then = j["success"] = json::array();
  for (const op& o : success) {
    then.push_back(request_op(o));
  }
  json& otherwise = j["failure"] = json::array();
  for (const op& o : failure) {
    otherwise.push_back(request_op(o));
  }
  return j.dump();
}

std::string encode_lease_grant(std::chrono::seconds ttl) {
  return json{{"TTL", int64_text(ttl.count())}}.dump();
}

std::string encode_lease_id(std::int64_t id) {
  return json{{"ID", int64_text(id)}}.dump();
}

std::string encode_watch_create(std::string_view key, bool prefix, std::int64_t start_revision) {
  json create = key_range(key, prefix);
  if (start_revision != 0) {
    create["start_revision"] = int64_text(start_revision);
  }
  return json{{"create_request", std::move(create)}}.dump();
}

etcd_result<range_result> decode_range(std::string_view body) {
  return decode<range_result>(body, [](reader& r, const json& answer) {
    return range_result{.kvs = r.kvs(answer), .revision = r.header_revision(answer)};
  });
}

etcd_result<std::int64_t> decode_put(std::string_view body) {
  return decode_revision(body);
}

etcd_result<erase_result> decode_erase(std::string_view body) {
  return decode<erase_result>(body, [](reader& r, const json& answer) {
    return erase_result{.deleted = r.int64(answer, "deleted"),
                        .revision = r.header_revision(answer)};
  });
}

etcd_result<txn_result> decode_txn(std::string_view body) {
  return decode<txn_result>(body, [](reader& r, const json& answer) {
    txn_result result{.succeeded = r.boolean(answer, "succeeded"),
                      .revision = r.header_revision(answer)};
    for (const json& response : r.array(answer, "responses")) {
      if (!response.is_object()) {
        r.fail("a transaction's response is not an object");
        break;
      }
      if (response.contains("response_range")) {
        result.ranges.push_back(r.kvs(r.object(response, "response_range")));
      }
    }
    return result;
  });
}

etcd_result<lease_grant_result> decode_lease_grant(std::string_view body) {
  return decode<lease_grant_result>(body, [](reader& r, const json& answer) {
    lease_grant_result grant{.id = r.int64(answer, "ID"),
                             .ttl = std::chrono::seconds(r.int64(answer, "TTL"))};
    if (grant.id == 0) {
      r.fail("a granted lease without an ID");
    }
    return grant;
  });
}

etcd_result<std::chrono::seconds> decode_lease_keepalive(std::string_view body) {
  auto result = first_stream_result(body);
  if (auto* error = std::get_if<etcd_error>(&result)) {
    return failed<std::chrono::seconds>(std::move(*error));
  }
  reader r;
  const std::int64_t ttl = r.int64(std::get<json>(result), "TTL");
  if (r.problem) {
    return failed<std::chrono::seconds>(malformed(*r.problem));
  }
  return {std::nullopt, std::chrono::seconds(ttl)};
}

etcd_result<std::int64_t> decode_revision(std::string_view body) {
  return decode<std::int64_t>(
      body, [](reader& r, const json& answer) { return r.header_revision(answer); });
}

etcd_result<watch_message> decode_watch_message(std::string_view object) {
  auto parsed = parse_answer(object);
  if (auto* error = std::get_if<etcd_error>(&parsed)) {
    return failed<watch_message>(std::move(*error));
  }
  const json& wrapper = std::get<json>(parsed);
  const auto it = wrapper.find("result");
  if (it == wrapper.end() || !it->is_object()) {
    return failed<watch_message>(malformed("a watch message without a result: " + excerpt(object)));
  }
  const json& result = *it;
  reader r;
  watch_message message{.created = r.boolean(result, "created")};
  watch_batch& batch = message.batch;
  batch.revision = r.header_revision(result);
  batch.canceled = r.boolean(result, "canceled");
  batch.compact_revision = r.int64(result, "compact_revision");
  batch.cancel_reason = r.text(result, "cancel_reason");
  for (const json& event : r.array(result, "events")) {
    if (!event.is_object()) {
      r.fail("a watch event is not an object");
      break;
    }
    watch_event e;
    // An enum: its name, or its number; PUT (0) is left out as the default.
    const auto type = event.find("type");
    if (type == event.end() || type->is_null() || *type == "PUT" || *type == 0) {
      e.type = watch_event::kind::put;
    } else if (*type == "DELETE" || *type == 1) {
      e.type = watch_event::kind::erase;
    } else {
      r.fail("unknown watch event type " + type->dump());
    }
    e.kv = r.kv(r.object(event, "kv"));
    batch.events.push_back(std::move(e));
  }
  if (r.problem) {
    return failed<watch_message>(malformed(*r.problem));
  }
  return {std::nullopt, std::move(message)};
}

etcd_error decode_error(unsigned status, std::string_view body) {
  json answer = json::parse(body.begin(), body.end(), nullptr, false);
  if (answer.is_object()) {
    if (auto error = error_in(answer)) {
      return std::move(*error);
    }
  }
  return etcd_error{.message = "HTTP " + std::to_string(status) +
                               " from what should be etcd: " + excerpt(body)};
}

void json_object_splitter::feed(std::string_view bytes) {
  pending_.append(bytes);
}

json_object_splitter::next_result json_object_splitter::next() {
  if (broken_) {
    return {std::nullopt, "the stream is broken"};
  }
  for (; scanned_ < pending_.size(); ++scanned_) {
    const char c = pending_[scanned_];
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        continue;
      }
      if (c != '{') {
        broken_ = true;
        return {std::nullopt,
                "expected a JSON object, found: " + excerpt(pending_.substr(scanned_))};
      }
      start_ = scanned_;
      depth_ = 1;
      continue;
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        std::string object = pending_.substr(start_, scanned_ + 1 - start_);
        pending_.erase(0, scanned_ + 1);
        scanned_ = 0;
        start_ = 0;
        return {std::move(object), std::nullopt};
      }
    }
  }
  if (depth_ == 0) {
    // Only white space is left.
    pending_.clear();
    scanned_ = 0;
  } else if (pending_.size() - start_ > max_object_) {
    broken_ = true;
    return {std::nullopt, "an object over " + std::to_string(max_object_) + " bytes"};
  }
  return {};
}

}  // namespace porthole::cluster
