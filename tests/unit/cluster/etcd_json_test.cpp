#include "cluster/etcd_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/base64.h"

namespace porthole::cluster {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string b64(std::string_view bytes) {
  return http::base64(bytes);
}

// An answer of etcd 3.4's gateway, as it wrote it: integers as strings,
// defaults left out.
constexpr const char* range_answer =
    R"({"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",)"
    R"("revision":"7","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2",)"
    R"("mod_revision":"5","version":"3","value":"YmFy","lease":"7587868530212491530"}],)"
    R"("count":"1"})";

// prefix_range_end -----------------------------------------------------------

TEST(PrefixRangeEnd, IncrementsTheLastByte) {
  EXPECT_EQ(prefix_range_end("/tunnels/"), "/tunnels0");
  EXPECT_EQ(prefix_range_end("a"), "b");
}

TEST(PrefixRangeEnd, DropsTrailingFfBytes) {
  EXPECT_EQ(prefix_range_end("a\xff\xff"), "b");
}

TEST(PrefixRangeEnd, IsNulForEveryKeyWhenNothingCanBeIncremented) {
  EXPECT_EQ(prefix_range_end(""), std::string(1, '\0'));
  EXPECT_EQ(prefix_range_end("\xff"), std::string(1, '\0'));
}

// requests -------------------------------------------------------------------

TEST(EncodeRequest, RangeOfOneKeyHasNoRangeEnd) {
  const json j = json::parse(encode_range("foo", false));
  EXPECT_EQ(j, json({{"key", b64("foo")}}));
}

TEST(EncodeRequest, RangeOfAPrefixEndsWhereThePrefixEnds) {
  const json j = json::parse(encode_range("/t/", true));
  EXPECT_EQ(j, json({{"key", b64("/t/")}, {"range_end", b64("/t0")}}));
}

TEST(EncodeRequest, EmptyPrefixMeansEveryKey) {
  const json j = json::parse(encode_erase("", true));
  const std::string nul(1, '\0');
  EXPECT_EQ(j, json({{"key", b64(nul)}, {"range_end", b64(nul)}}));
}

TEST(EncodeRequest, PutCarriesBinaryBytesAndTheLeaseAsAString) {
  const std::string key("k\0\xff", 3);
  const json j = json::parse(encode_put(key, "v", 7587868530212491530));
  EXPECT_EQ(j, json({{"key", b64(key)}, {"value", b64("v")}, {"lease", "7587868530212491530"}}));
}

TEST(EncodeRequest, PutWithoutLeaseLeavesTheLeaseOut) {
  EXPECT_FALSE(json::parse(encode_put("k", "", 0)).contains("lease"));
}

TEST(EncodeRequest, TxnNamesTargetsRelationsAndOperations) {
  const json j = json::parse(
      encode_txn({compare::create_revision("a", compare::equal, 0),
                  compare::mod_revision("b", compare::not_equal, 12),
                  compare::version("c", compare::greater, 2),
                  compare::value("d", compare::less, "x"), compare::lease("e", compare::equal, 99)},
                 {op::put("a", "1", 99), op::erase("b"), op::erase_prefix("p/")},
                 {op::range("a"), op::range_prefix("p/")}));
  EXPECT_EQ(j["compare"], json::parse(R"([
      {"key":")" + b64("a") + R"(","target":"CREATE","result":"EQUAL","create_revision":"0"},
      {"key":")" + b64("b") + R"(","target":"MOD","result":"NOT_EQUAL","mod_revision":"12"},
      {"key":")" + b64("c") + R"(","target":"VERSION","result":"GREATER","version":"2"},
      {"key":")" + b64("d") + R"(","target":"VALUE","result":"LESS","value":")" +
                                      b64("x") + R"("},
      {"key":")" + b64("e") + R"(","target":"LEASE","result":"EQUAL","lease":"99"}])"));
  EXPECT_EQ(j["success"], json::parse(R"([
      {"request_put":{"key":")" + b64("a") +
                                      R"(","value":")" + b64("1") + R"(","lease":"99"}},
      {"request_delete_range":{"key":")" +
                                      b64("b") + R"("}},
      {"request_delete_range":{"key":")" +
                                      b64("p/") + R"(","range_end":")" + b64("p0") + R"("}}])"));
  EXPECT_EQ(j["failure"], json::parse(R"([
      {"request_range":{"key":")" + b64("a") +
                                      R"("}},
      {"request_range":{"key":")" + b64("p/") +
                                      R"(","range_end":")" + b64("p0") + R"("}}])"));
}

TEST(EncodeRequest, TxnWithoutBranchesSendsEmptyLists) {
  const json j = json::parse(encode_txn({}, {}, {}));
  EXPECT_EQ(j, json::parse(R"({"compare":[],"success":[],"failure":[]})"));
}

TEST(EncodeRequest, LeaseCallsUseTheGatewaysUpperCaseNames) {
  EXPECT_EQ(json::parse(encode_lease_grant(std::chrono::seconds(10))), json({{"TTL", "10"}}));
  EXPECT_EQ(json::parse(encode_lease_id(42)), json({{"ID", "42"}}));
}

TEST(EncodeRequest, WatchCreateRequestStartsAtTheRevisionAsked) {
  EXPECT_EQ(json::parse(encode_watch_create("/t/", true, 17)),
            json({{"create_request",
                   {{"key", b64("/t/")}, {"range_end", b64("/t0")}, {"start_revision", "17"}}}}));
  EXPECT_EQ(json::parse(encode_watch_create("k", false, 0)),
            json({{"create_request", {{"key", b64("k")}}}}));
}

// answers --------------------------------------------------------------------

TEST(DecodeAnswer, RangeReadsEtcdsStringIntegers) {
  const auto r = decode_range(range_answer);
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_EQ(r->revision, 7);
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0], (key_value{.key = "foo",
                                  .value = "bar",
                                  .create_revision = 2,
                                  .mod_revision = 5,
                                  .version = 3,
                                  .lease = 7587868530212491530}));
}

TEST(DecodeAnswer, RangeReadsIntegersAsNumbersToo) {
  const auto r = decode_range(
      R"({"header":{"revision":9},"kvs":[{"key":"Zm9v","create_revision":2,"version":1}]})");
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_EQ(r->revision, 9);
  EXPECT_EQ(r->kvs[0].create_revision, 2);
  EXPECT_EQ(r->kvs[0].version, 1);
}

TEST(DecodeAnswer, MissingFieldsAreDefaults) {
  const auto r = decode_range(R"({"header":{"revision":"3"},"kvs":[{"key":"Zm9v"}]})");
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_EQ(r->kvs[0], key_value{.key = "foo"});
  const auto empty = decode_range(R"({"header":{"revision":"3"}})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->kvs.empty());
  EXPECT_EQ(decode_range("{}")->revision, 0);
}

TEST(DecodeAnswer, PutGivesTheHeaderRevision) {
  const auto r = decode_put(R"({"header":{"cluster_id":"1","revision":"12"}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 12);
}

TEST(DecodeAnswer, EraseCountsDeletedKeys) {
  const auto r = decode_erase(R"({"header":{"revision":"13"},"deleted":"2"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted, 2);
  EXPECT_EQ(r->revision, 13);
  EXPECT_EQ(decode_erase(R"({"header":{"revision":"13"}})")->deleted, 0);
}

TEST(DecodeAnswer, TxnKeepsOneRangePerRangeOperationInOrder) {
  const auto r = decode_txn(
      R"({"header":{"revision":"20"},"succeeded":true,"responses":[)"
      R"({"response_put":{"header":{"revision":"20"}}},)"
      R"({"response_range":{"header":{},"kvs":[{"key":"YQ==","value":"MQ=="}],"count":"1"}},)"
      R"({"response_delete_range":{"header":{},"deleted":"1"}},)"
      R"({"response_range":{"header":{}}}]})");
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_TRUE(r->succeeded);
  EXPECT_EQ(r->revision, 20);
  ASSERT_EQ(r->ranges.size(), 2u);
  EXPECT_THAT(r->ranges[0], ElementsAre(key_value{.key = "a", .value = "1"}));
  EXPECT_TRUE(r->ranges[1].empty());
}

TEST(DecodeAnswer, TxnThatFailedLeavesSucceededOut) {
  const auto r = decode_txn(R"({"header":{"revision":"4"},"responses":[]})");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->succeeded);
}

TEST(DecodeAnswer, LeaseGrantGivesIdAndTtl) {
  const auto r = decode_lease_grant(R"({"header":{},"ID":"4111120501975577865","TTL":"5"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 4111120501975577865);
  EXPECT_EQ(r->ttl, std::chrono::seconds(5));
}

TEST(DecodeAnswer, LeaseGrantErrorFieldIsAnError) {
  const auto r = decode_lease_grant(R"({"header":{},"ID":"1","error":"lease already exists"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error->message, "lease already exists");
}

TEST(DecodeAnswer, KeepaliveGivesTheRestartedTtl) {
  const auto r = decode_lease_keepalive(R"({"result":{"header":{},"ID":"1","TTL":"9"}})"
                                        "\n");
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_EQ(*r, std::chrono::seconds(9));
}

TEST(DecodeAnswer, KeepaliveOfAGoneLeaseGivesZero) {
  const auto r = decode_lease_keepalive(R"({"result":{"header":{"revision":"2"},"ID":"1"}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::chrono::seconds(0));
}

TEST(DecodeAnswer, KeepaliveStreamErrorIsEtcdsError) {
  const auto r = decode_lease_keepalive(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error->message, "etcdserver: no leader");
  EXPECT_EQ(r.error->code, 14);
  EXPECT_TRUE(r.error->unavailable);
}

TEST(DecodeAnswer, UnaryErrorBodyIsEtcdsErrorWithItsCode) {
  const etcd_error e = decode_error(
      404,
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  EXPECT_EQ(e.message, "etcdserver: requested lease not found");
  EXPECT_EQ(e.code, 5);
  EXPECT_FALSE(e.unavailable);
  const auto r = decode_revision(R"({"error":"etcdserver: no leader","code":14})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error->message, "etcdserver: no leader");
  EXPECT_TRUE(r.error->unavailable);
}

TEST(DecodeAnswer, ErrorFromSomethingElseNamesTheStatusAndBody) {
  const etcd_error e = decode_error(502, "<html>Bad Gateway</html>\n");
  EXPECT_EQ(e.message, "HTTP 502 from what should be etcd: <html>Bad Gateway</html>");
  EXPECT_FALSE(e.unavailable);
}

TEST(DecodeAnswer, BadAnswersAreErrorsNamingTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not JSON"},
      {"{\"header\":", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {"\"text\"", "not a JSON object"},
      {R"({"kvs":{}})", "kvs is not an array"},
      {R"({"kvs":[1]})", "a key-value is not an object"},
      {R"({"kvs":[{"key":"%%%"}]})", "key is not base64"},
      {R"({"kvs":[{"key":7}]})", "key is not a string"},
      {R"({"header":{"revision":"12x"}})", "revision is not a 64-bit integer"},
      {R"({"header":{"revision":"99999999999999999999"}})", "revision is not a 64-bit integer"},
      {R"({"header":{"revision":18446744073709551615}})", "revision is not a 64-bit integer"},
      {R"({"header":{"revision":1.5}})", "revision is not a 64-bit integer"},
      {R"({"header":[]})", "header is not an object"},
      {R"({"error":17})", "error is neither a string nor an object"},
  };
  for (const auto& [body, problem] : cases) {
    const auto r = decode_range(body);
    ASSERT_FALSE(r) << body;
    EXPECT_THAT(r.error->message, HasSubstr("malformed answer from etcd: " + problem)) << body;
    EXPECT_FALSE(r.error->unavailable) << body;
  }
}

TEST(DecodeAnswer, EveryCutOfAnAnswerIsAValueOrAnErrorNeverACrash) {
  const std::string whole = range_answer;
  for (std::size_t n = 0; n < whole.size(); ++n) {
    const std::string cut = whole.substr(0, n);
    (void)decode_range(cut);
    (void)decode_txn(cut);
    (void)decode_lease_keepalive(cut);
    (void)decode_watch_message(cut);
  }
  EXPECT_TRUE(decode_range(whole));
}

TEST(DecodeAnswer, WrongFieldTypesInEveryAnswerAreErrors) {
  EXPECT_FALSE(decode_txn(R"({"succeeded":"yes"})"));
  EXPECT_FALSE(decode_txn(R"({"responses":[7]})"));
  EXPECT_FALSE(decode_txn(R"({"responses":[{"response_range":[]}]})"));
  EXPECT_FALSE(decode_lease_grant(R"({"ID":"0","TTL":"5"})"));
  EXPECT_FALSE(decode_lease_grant(R"({"ID":"1","TTL":true})"));
  EXPECT_FALSE(decode_lease_keepalive(R"({"ID":"1"})"));
  EXPECT_FALSE(decode_lease_keepalive("garbage"));
  EXPECT_FALSE(decode_erase(R"({"deleted":null,"header":{"revision":{}}})"));
}

// watch messages -------------------------------------------------------------

TEST(DecodeWatchMessage, CreationConfirmation) {
  const auto r = decode_watch_message(R"({"result":{"header":{"revision":"2"},"created":true}})");
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_TRUE(r->created);
  EXPECT_TRUE(r->batch.events.empty());
  EXPECT_EQ(r->batch.revision, 2);
}

TEST(DecodeWatchMessage, PutAndDeleteEventsInOrder) {
  const auto r = decode_watch_message(
      R"({"result":{"header":{"revision":"9"},"events":[)"
      R"({"kv":{"key":"YQ==","create_revision":"8","mod_revision":"8","version":"1","value":"MQ=="}},)"
      R"({"type":"DELETE","kv":{"key":"YQ==","mod_revision":"9"}}]}})");
  ASSERT_TRUE(r) << r.error->message;
  EXPECT_FALSE(r->created);
  ASSERT_EQ(r->batch.events.size(), 2u);
  EXPECT_EQ(r->batch.events[0].type, watch_event::kind::put);
  EXPECT_EQ(
      r->batch.events[0].kv,
      (key_value{.key = "a", .value = "1", .create_revision = 8, .mod_revision = 8, .version = 1}));
  EXPECT_EQ(r->batch.events[1].type, watch_event::kind::erase);
  EXPECT_EQ(r->batch.events[1].kv, (key_value{.key = "a", .mod_revision = 9}));
  EXPECT_EQ(r->batch.revision, 9);
}

TEST(DecodeWatchMessage, EventTypesAsNumbers) {
  const auto r = decode_watch_message(
      R"({"result":{"events":[{"type":0,"kv":{"key":"YQ=="}},{"type":1,"kv":{"key":"YQ=="}}]}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->batch.events[0].type, watch_event::kind::put);
  EXPECT_EQ(r->batch.events[1].type, watch_event::kind::erase);
}

TEST(DecodeWatchMessage, CompactionCancelsTheWatch) {
  const auto r = decode_watch_message(
      R"({"result":{"header":{"revision":"30"},"canceled":true,"compact_revision":"25",)"
      R"("cancel_reason":"mvcc: required revision has been compacted"}})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->batch.canceled);
  EXPECT_EQ(r->batch.compact_revision, 25);
  EXPECT_EQ(r->batch.cancel_reason, "mvcc: required revision has been compacted");
}

TEST(DecodeWatchMessage, UnknownEventTypeAndMissingResultAreErrors) {
  EXPECT_FALSE(decode_watch_message(R"({"result":{"events":[{"type":"EXPLODE"}]}})"));
  EXPECT_FALSE(decode_watch_message(R"({"header":{}})"));
  EXPECT_FALSE(decode_watch_message(R"({"result":{"events":{}}})"));
  const auto e = decode_watch_message(R"({"error":{"grpc_code":1,"message":"context canceled"}})");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error->message, "context canceled");
}

// json_object_splitter -------------------------------------------------------

std::vector<std::string> split_all(json_object_splitter& s) {
  std::vector<std::string> out;
  while (true) {
    auto next = s.next();
    EXPECT_FALSE(next.error) << *next.error;
    if (!next.object) {
      return out;
    }
    out.push_back(*next.object);
  }
}

TEST(JsonObjectSplitter, SplitsObjectsOnePerLine) {
  json_object_splitter s(1024);
  s.feed("{\"a\":1}\n{\"b\":{\"c\":[1,2]}}\n");
  EXPECT_THAT(split_all(s), ElementsAre("{\"a\":1}", "{\"b\":{\"c\":[1,2]}}"));
}

TEST(JsonObjectSplitter, SplitsConcatenatedObjects) {
  json_object_splitter s(1024);
  s.feed("{\"a\":1}{\"b\":2}  \r\n\t{}");
  EXPECT_THAT(split_all(s), ElementsAre("{\"a\":1}", "{\"b\":2}", "{}"));
}

TEST(JsonObjectSplitter, BracesAndQuotesInsideStringsDoNotCount) {
  json_object_splitter s(1024);
  s.feed(R"({"a":"}{\"]\\"}{"b":"\\"})");
  EXPECT_THAT(split_all(s), ElementsAre(R"({"a":"}{\"]\\"})", R"({"b":"\\"})"));
}

TEST(JsonObjectSplitter, ObjectsCutAtEveryByteComeOutWhole) {
  const std::string stream = std::string(range_answer) + "\n" + range_answer + "\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    json_object_splitter s(4096);
    std::vector<std::string> objects;
    s.feed(stream.substr(0, cut));
    for (auto& o : split_all(s)) {
      objects.push_back(o);
    }
    s.feed(stream.substr(cut));
    for (auto& o : split_all(s)) {
      objects.push_back(o);
    }
    EXPECT_THAT(objects, ElementsAre(range_answer, range_answer)) << "cut at " << cut;
  }
}

TEST(JsonObjectSplitter, SomethingOtherThanAnObjectBreaksTheStream) {
  json_object_splitter s(1024);
  s.feed("{}\n[1]");
  EXPECT_EQ(s.next().object, "{}");
  auto next = s.next();
  ASSERT_TRUE(next.error);
  EXPECT_THAT(*next.error, HasSubstr("expected a JSON object, found: [1]"));
  EXPECT_TRUE(s.next().error);
}

TEST(JsonObjectSplitter, AnObjectOverTheLimitBreaksTheStream) {
  json_object_splitter s(16);
  s.feed("{\"a\":\"0123456789");
  EXPECT_FALSE(s.next().error);
  s.feed("abcdef");
  auto next = s.next();
  ASSERT_TRUE(next.error);
  EXPECT_THAT(*next.error, HasSubstr("an object over 16 bytes"));
}

}  // namespace
}  // namespace porthole::cluster
