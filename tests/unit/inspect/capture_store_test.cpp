#include "inspect/capture_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "inspect/capture_writer.h"
#include "support/temporary_directory.h"

namespace porthole::inspect {
namespace {

using namespace std::chrono_literals;
using porthole::testing::temporary_directory;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

exchange make_exchange(std::string target, std::string tunnel = "web") {
  exchange e;
  e.tunnel_name = std::move(tunnel);
  e.public_url = "https://app.example.com";
  e.remote_addr = "203.0.113.7:51234";
  e.start = std::chrono::sys_time<std::chrono::milliseconds>(1'700'000'000'123ms);
  e.duration = 1234us;
  e.request.method = "POST";
  e.request.target = std::move(target);
  e.request.version = "HTTP/1.1";
  e.request.headers = {{"Host", "app.example.com"}, {"X-Dup", "1"}, {"X-Dup", "2"}};
  e.request.body = {"hello", 5, false};
  return e;
}

std::vector<std::string> targets(const std::vector<exchange>& exchanges) {
  std::vector<std::string> result;
  for (const auto& e : exchanges) {
    result.push_back(e.request.target);
  }
  return result;
}

TEST(CaptureStore, AddThenGetReturnsTheSameExchangeWithBinaryBodies) {
  capture_store store(":memory:");
  exchange e = make_exchange("/upload");
  e.request.body = {std::string("\0\x01\xff\0tail", 7), 1'000'000, true};
  captured_response& r = e.response.emplace();
  r.status = 200;
  r.reason = "OK";
  r.version = "HTTP/1.1";
  r.headers = {{"Content-Type", "application/octet-stream"}};
  r.body = {std::string("\0\0\0", 3), 3, false};
  e.replay_of = 41;
  e.websocket = websocket_traffic{1, 2, 3, 4};
  e.error = "";

  std::int64_t id = store.add(e);
  auto got = store.get(id);

  ASSERT_TRUE(got);
  e.id = id;
  EXPECT_EQ(*got, e);
  EXPECT_EQ(got->request.body.bytes.size(), 7u);
}

TEST(CaptureStore, PendingOrFailedExchangeHasNoResponse) {
  capture_store store(":memory:");
  exchange e = make_exchange("/down");
  e.request.body = {};
  e.error = "local service unreachable";

  auto got = store.get(store.add(e));

  ASSERT_TRUE(got);
  EXPECT_FALSE(got->response);
  EXPECT_FALSE(got->replay_of);
  EXPECT_FALSE(got->websocket);
  EXPECT_EQ(got->error, "local service unreachable");
  EXPECT_EQ(got->request.body.bytes, "");
}

TEST(CaptureStore, GetOfAnUnknownIdReturnsNothing) {
  capture_store store(":memory:");
  EXPECT_FALSE(store.get(42));
}

TEST(CaptureStore, IdsGrowWithEachAdd) {
  capture_store store(":memory:");
  std::int64_t first = store.add(make_exchange("/a"));
  std::int64_t second = store.add(make_exchange("/b"));
  EXPECT_GT(first, 0);
  EXPECT_GT(second, first);
}

TEST(CaptureStore, ListReturnsNewestFirstUpToTheLimit) {
  capture_store store(":memory:");
  for (auto t : {"/1", "/2", "/3", "/4"}) {
    store.add(make_exchange(t));
  }
  EXPECT_THAT(targets(store.list(3)), ElementsAre("/4", "/3", "/2"));
  EXPECT_THAT(targets(store.list(100)), ElementsAre("/4", "/3", "/2", "/1"));
}

TEST(CaptureStore, ListFiltersByTunnelName) {
  capture_store store(":memory:");
  store.add(make_exchange("/a1", "a"));
  store.add(make_exchange("/b1", "b"));
  store.add(make_exchange("/a2", "a"));

  EXPECT_THAT(targets(store.list(10, "a")), ElementsAre("/a2", "/a1"));
  EXPECT_THAT(targets(store.list(10, "b")), ElementsAre("/b1"));
  EXPECT_TRUE(store.list(10, "none").empty());
}

TEST(CaptureStore, AddPrunesAllButTheNewestKept) {
  capture_store store(":memory:", 3);
  std::vector<std::int64_t> ids;
  for (auto t : {"/1", "/2", "/3", "/4", "/5"}) {
    ids.push_back(store.add(make_exchange(t)));
  }
  EXPECT_EQ(store.count(), 3u);
  EXPECT_THAT(targets(store.list(10)), ElementsAre("/5", "/4", "/3"));
  EXPECT_FALSE(store.get(ids[0]));
  EXPECT_FALSE(store.get(ids[1]));
}

TEST(CaptureStore, ClearRemovesEverythingAndIdsAreNotReused) {
  capture_store store(":memory:");
  store.add(make_exchange("/a"));
  std::int64_t last = store.add(make_exchange("/b"));

  store.clear();

  EXPECT_EQ(store.count(), 0u);
  EXPECT_TRUE(store.list(10).empty());
  EXPECT_GT(store.add(make_exchange("/c")), last);
}

TEST(CaptureStore, HistorySurvivesReopeningTheFile) {
  temporary_directory dir;
  auto path = (dir.path() / "state" / "inspect.db").string();
  std::int64_t id = 0;
  {
    capture_store store(path);
    store.add(make_exchange("/before"));
    id = store.add(make_exchange("/last"));
  }
  capture_store reopened(path);
  EXPECT_EQ(reopened.count(), 2u);
  ASSERT_TRUE(reopened.get(id));
  EXPECT_EQ(reopened.get(id)->request.target, "/last");
  EXPECT_GT(reopened.add(make_exchange("/after")), id);
}

TEST(CaptureStore, FileStoreUsesWriteAheadLogging) {
  temporary_directory dir;
  auto path = (dir.path() / "inspect.db").string();
  capture_store store(path);
  store.add(make_exchange("/a"));
  EXPECT_TRUE(std::filesystem::exists(path + "-wal"));
}

TEST(CaptureStore, MemoryStoreWritesNothingToDisk) {
  temporary_directory dir;
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  {
    capture_store store(":memory:");
    store.add(make_exchange("/a"));
    EXPECT_EQ(store.count(), 1u);
  }
  std::filesystem::current_path(cwd);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  EXPECT_EQ(capture_store(":memory:").count(), 0u);
}

TEST(CaptureStore, FileThatIsNotSqliteGivesAnErrorNamingIt) {
  temporary_directory dir;
  auto path = (dir.path() / "notes.txt").string();
  std::ofstream(path) << std::string(4096, 'x');
  try {
    capture_store store(path);
    FAIL() << "opened a text file";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a"));
  }
}

TEST(CaptureStore, SqliteDatabaseOfAnotherProgramGivesAnErrorNamingIt) {
  temporary_directory dir;
  auto path = (dir.path() / "other.db").string();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    capture_store store(path);
    FAIL() << "opened another program's database";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a porthole capture store"));
  }
}

TEST(CaptureStore, UnopenablePathGivesAnErrorNamingIt) {
  temporary_directory dir;
  auto blocker = dir.path() / "file";
  std::ofstream(blocker) << "x";
  auto path = (blocker / "inspect.db").string();
  try {
    capture_store store(path);
    FAIL() << "opened a store below a regular file";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
}

TEST(CaptureStore, KeepOfZeroIsRejected) {
  EXPECT_THROW(capture_store(":memory:", 0), std::invalid_argument);
}

TEST(CaptureWriter, SubmittedExchangesAreStoredInOrderAndReported) {
  capture_writer writer(capture_store(":memory:"));
  std::mutex mutex;
  std::vector<exchange> reported;
  writer.on_stored([&](const exchange& e) {
    std::lock_guard lock(mutex);
    reported.push_back(e);
  });

  EXPECT_TRUE(writer.submit(make_exchange("/1")));
  EXPECT_TRUE(writer.submit(make_exchange("/2")));
  EXPECT_TRUE(writer.submit(make_exchange("/3")));
  writer.stop();

  EXPECT_THAT(targets(writer.list(10)), ElementsAre("/3", "/2", "/1"));
  ASSERT_THAT(targets(reported), ElementsAre("/1", "/2", "/3"));
  EXPECT_LT(reported[0].id, reported[1].id);
  EXPECT_LT(reported[1].id, reported[2].id);
  ASSERT_TRUE(writer.get(reported[2].id));
  EXPECT_EQ(*writer.get(reported[2].id), reported[2]);
  EXPECT_EQ(writer.dropped(), 0u);
}

TEST(CaptureWriter, FullQueueDropsAndCounts) {
  capture_writer writer(capture_store(":memory:"), {.queue_entries = 2}, /*paused=*/true);

  EXPECT_TRUE(writer.submit(make_exchange("/1")));
  EXPECT_TRUE(writer.submit(make_exchange("/2")));
  EXPECT_FALSE(writer.submit(make_exchange("/3")));
  EXPECT_FALSE(writer.submit(make_exchange("/4")));
  EXPECT_EQ(writer.dropped(), 2u);

  writer.resume();
  writer.stop();
  EXPECT_THAT(targets(writer.list(10)), ElementsAre("/2", "/1"));
}

TEST(CaptureWriter, QueueOverItsByteBoundDropsAndCounts) {
  capture_writer writer(capture_store(":memory:"), {.queue_entries = 10, .queue_bytes = 8},
                        /*paused=*/true);
  exchange big = make_exchange("/big");
  big.request.body = {std::string(9, 'b'), 9, false};

  EXPECT_TRUE(writer.submit(make_exchange("/small")));  // 5 bytes
  EXPECT_FALSE(writer.submit(big));
  EXPECT_EQ(writer.dropped(), 1u);
}

TEST(CaptureWriter, StopStoresWhatWasQueued) {
  capture_writer writer(capture_store(":memory:"), {}, /*paused=*/true);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(writer.submit(make_exchange("/" + std::to_string(i))));
  }
  EXPECT_EQ(writer.count(), 0u);

  writer.stop();

  EXPECT_EQ(writer.count(), 5u);
}

TEST(CaptureWriter, SubmitAfterStopIsRefusedWithoutCountingADrop) {
  capture_writer writer(capture_store(":memory:"));
  writer.stop();
  EXPECT_FALSE(writer.submit(make_exchange("/late")));
  EXPECT_EQ(writer.dropped(), 0u);
}

TEST(CaptureWriter, ClearEmptiesTheStore) {
  capture_writer writer(capture_store(":memory:"));
  writer.submit(make_exchange("/a"));
  writer.stop();
  writer.clear();
  EXPECT_EQ(writer.count(), 0u);
}

}  // namespace
}  // namespace porthole::inspect
