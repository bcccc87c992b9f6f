#pragma once
// The bodies of etcd's v3 JSON gateway (grpc-gateway, etcd 3.4: POST
// /v3/kv/range and so on): requests encoded, answers decoded. Pure: no I/O.
//
// Keys and values travel in base64. The gateway writes 64-bit integers as
// JSON strings and leaves out every field at its default (0, false, empty),
// so a missing field reads as its default and an integer may be a string or
// a number. An answer may instead be an error: {"error": "...", "code": N,
// "message": "..."} from a unary call, {"error": {"grpc_code": N, "message":
// "..."}} in a stream; either decodes to an etcd_error with etcd's message.
// Anything else that is not what the call answers (bad JSON, a field of the
// wrong type, bad base64) decodes to an etcd_error too, never a crash.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_messages.h"

namespace porthole::cluster {

/// The end of the key range holding every key that starts with `prefix`:
/// the prefix with its last byte below 0xff incremented (and what follows
/// dropped); "\0", "every key from the start", when there is none.
std::string prefix_range_end(std::string_view prefix);

/// Body of /v3/kv/range: `key`, or every key starting with it.
std::string encode_range(std::string_view key, bool prefix);
/// Body of /v3/kv/put.
std::string encode_put(std::string_view key, std::string_view value, std::int64_t lease);
/// Body of /v3/kv/deleterange: `key`, or every key starting with it.
std::string encode_erase(std::string_view key, bool prefix);
/// Body of /v3/kv/txn.
std::string encode_txn(const std::vector<compare>& compares, const std::vector<op>& success,
                       const std::vector<op>& failure);
/// Body of /v3/lease/grant; etcd picks the lease's id.
std::string encode_lease_grant(std::chrono::seconds ttl);
/// Body of /v3/lease/keepalive and /v3/lease/revoke.
std::string encode_lease_id(std::int64_t id);
/// Body of /v3/watch: a create_request from `start_revision` (0: from now).
std::string encode_watch_create(std::string_view key, bool prefix, std::int64_t start_revision);

/// The answer of /v3/kv/range.
etcd_result<range_result> decode_range(std::string_view body);
/// The answer of /v3/kv/put: the revision of the put.
etcd_result<std::int64_t> decode_put(std::string_view body);
/// The answer of /v3/kv/deleterange.
etcd_result<erase_result> decode_erase(std::string_view body);
/// The answer of /v3/kv/txn.
etcd_result<txn_result> decode_txn(std::string_view body);
/// The answer of /v3/lease/grant.
etcd_result<lease_grant_result> decode_lease_grant(std::string_view body);
/// The answer of /v3/lease/keepalive, a stream of {"result": ...} holding
/// one object here: the lease's remaining TTL, 0 when the lease is gone
/// (expired, revoked or never granted).
etcd_result<std::chrono::seconds> decode_lease_keepalive(std::string_view body);
/// The header revision of an answer that carries nothing else
/// (/v3/lease/revoke).
etcd_result<std::int64_t> decode_revision(std::string_view body);

/// One object of the /v3/watch stream.
struct watch_message {
  bool created = false;  ///< the confirmation that the watch exists
  watch_batch batch{};
};
/// One {"result": ...} (or {"error": ...}) object of the /v3/watch stream.
etcd_result<watch_message> decode_watch_message(std::string_view object);

/// The error of an answer that is not HTTP 200: etcd's own (an error body),
/// or one naming the status and the start of the body.
etcd_error decode_error(unsigned status, std::string_view body);

/// Splits a stream of JSON objects (grpc-gateway's streaming answers: one
/// object per line, or concatenated, cut anywhere by chunks and reads) into
/// whole objects, without parsing them.
class json_object_splitter {
 public:
  /// `max_object` bounds one object and what may be pending.
  explicit json_object_splitter(std::size_t max_object) : max_object_(max_object) {}

  /// Appends bytes of the stream.
  void feed(std::string_view bytes);

  /// The next whole object, if one is complete.
  struct next_result {
    std::optional<std::string> object;
    std::optional<std::string> error;  ///< the stream is not a sequence of objects
  };
  next_result next();

 private:
  std::size_t max_object_;
  std::string pending_;
  std::size_t start_ = 0;    // where the object being scanned starts in pending_
  std::size_t scanned_ = 0;  // bytes of pending_ already scanned
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
  bool broken_ = false;
};

}  // namespace porthole::cluster
