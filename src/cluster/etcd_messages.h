#pragma once
// What etcd's v3 key-value, lease and watch calls carry, as porthole uses
// them: keys, values and revisions, comparisons and operations of a
// transaction, and the answers. Plain data; no I/O.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace porthole::cluster {

/// A key as etcd stores it. Revisions are cluster-wide and only grow; a
/// field etcd leaves out of its answer is 0 (or empty).
///
/// (Members of these structs all have initializers, so that designated
/// initializers may leave any out without -Wmissing-field-initializers.)
struct key_value {
  std::string key{};
  std::string value{};
  std::int64_t create_revision = 0;  ///< revision of the put that created the key (0: absent)
  std::int64_t mod_revision = 0;     ///< revision of its last change
  std::int64_t version = 0;          ///< puts since it was created
  std::int64_t lease = 0;            ///< the lease it is bound to, 0 for none

  bool operator==(const key_value&) const = default;
};

/// Why a call failed.
struct etcd_error {
  std::string message{};
  /// No endpoint could be reached or answered in time, or the member that
  /// answered cannot serve (gRPC Unavailable: no leader, a timed-out
  /// proposal): the cluster may be fine a moment later. False for an error
  /// etcd returned for the request itself (a missing lease, a bad request)
  /// and for an answer that is not etcd's.
  bool unavailable = false;
  /// etcd's gRPC status code when etcd answered with an error (5: not found,
  /// 14: unavailable); 0 otherwise.
  int code = 0;
};

/// A call's answer: `value`, or `error` (and then `value` is empty).
/// `if (!r) { use(r.error->message); }`
template <class T>
struct etcd_result {
  std::optional<etcd_error> error{};
  T value{};

  explicit operator bool() const { return !error.has_value(); }
  T& operator*() { return value; }
  const T& operator*() const { return value; }
  T* operator->() { return &value; }
  const T* operator->() const { return &value; }
};

/// A failed result.
template <class T>
etcd_result<T> failed(etcd_error error) {
  return etcd_result<T>{std::move(error), T{}};
}

/// What range() and range_prefix() found.
struct range_result {
  std::vector<key_value> kvs{};  ///< in key order
  std::int64_t revision = 0;     ///< the store's revision when the range was read
};

/// What erase() and erase_prefix() did.
struct erase_result {
  std::int64_t deleted = 0;   ///< keys deleted
  std::int64_t revision = 0;  ///< the store's revision after the call
};

/// A condition of a transaction: one field of one key compared with a value.
/// A key that does not exist has create_revision, mod_revision, version and
/// lease 0 and an empty value.
struct compare {
  enum relation { equal, not_equal, greater, less };
  enum class field { version, create_revision, mod_revision, value, lease };

  std::string key{};
  field what = field::version;
  relation how = equal;
  std::int64_t number = 0;  ///< compared with every field but value
  std::string text{};       ///< compared with field::value

  /// `key`'s create_revision against `revision`: (key, equal, 0) holds when
  /// the key does not exist, the test of a claim.
  static compare create_revision(std::string key, relation how, std::int64_t revision);
  /// `key`'s mod_revision against `revision`: (key, equal, r) holds when
  /// nobody changed the key since revision r, the test of a takeover.
  static compare mod_revision(std::string key, relation how, std::int64_t revision);
  /// `key`'s version (puts since creation) against `version`.
  static compare version(std::string key, relation how, std::int64_t version);
  /// `key`'s value against `value` (byte-wise).
  static compare value(std::string key, relation how, std::string value);
  /// The lease `key` is bound to against `lease` (0: none).
  static compare lease(std::string key, relation how, std::int64_t lease);
};

/// One operation of a transaction's branch.
struct op {
  enum class kind { put, erase, range };

  kind type = kind::range;
  std::string key{};
  std::string value{};     ///< put only
  std::int64_t lease = 0;  ///< put only: bind the key to this lease (0: none)
  bool prefix = false;     ///< erase and range: every key starting with `key`

  /// Puts `value` at `key`, bound to `lease` unless it is 0.
  static op put(std::string key, std::string value, std::int64_t lease = 0);
  /// Deletes `key`.
  static op erase(std::string key);
  /// Deletes every key starting with `prefix`.
  static op erase_prefix(std::string prefix);
  /// Reads `key`.
  static op range(std::string key);
  /// Reads every key starting with `prefix`.
  static op range_prefix(std::string prefix);
};

/// What a transaction did.
struct txn_result {
  bool succeeded = false;     ///< every comparison held: the success branch ran
  std::int64_t revision = 0;  ///< the store's revision after the transaction
  /// What each range operation of the branch that ran found, in order.
  std::vector<std::vector<key_value>> ranges{};
};

/// A lease etcd granted.
struct lease_grant_result {
  std::int64_t id = 0;
  std::chrono::seconds ttl{0};  ///< as etcd granted it (at least its minimum TTL)
};

/// One change a watch saw.
struct watch_event {
  enum class kind { put, erase };

  kind type = kind::put;
  /// After a put: the key as it now is. After an erase: its key, and the
  /// revision of the deletion as mod_revision; the other fields are 0.
  key_value kv{};
};

/// The changes of one or more revisions, as etcd sent them together.
struct watch_batch {
  std::vector<watch_event> events{};  ///< in revision order; empty for a progress notification
  std::int64_t revision = 0;          ///< the store's revision when etcd sent the batch
  /// etcd ended the watch (canceled): no batch follows this one.
  bool canceled = false;
  /// Non-zero when the watch was canceled because the revisions it asked
  /// for were compacted away; the oldest revision a new watch can start at.
  std::int64_t compact_revision = 0;
  std::string cancel_reason{};  ///< etcd's words, when it gave any
};

}  // namespace porthole::cluster
