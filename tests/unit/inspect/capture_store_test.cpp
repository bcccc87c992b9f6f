#include "inspect/capture_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "inspect/capture_writer.h"
#include "support/captured_log.h"
#include "support/temporary_directory.h"

namespace porthole::inspect {
namespace {

using namespace std::chrono_literals;
using porthole::testing::captured_log;
using porthole::testing::temporary_directory;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

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

TEST(CaptureStore, HeaderNamesAndValuesComeBackByteForByte) {
  capture_store store(":memory:");
  exchange e = make_exchange("/bytes");
  const std::string not_utf8("caf\xe9 \xff\0end", 10);
  e.request.headers = {{"X-Raw", not_utf8}, {"", ""}, {"X-Raw", "second"}};
  captured_response& r = e.response.emplace();
  r.status = 200;
  r.headers = {{std::string("X-\xff", 3), std::string(300, '\x80')}};

  auto got = store.get(store.add(e));

  ASSERT_TRUE(got);
  ASSERT_EQ(got->request.headers.size(), 3u);
  EXPECT_EQ(got->request.headers[0].second, not_utf8);
  EXPECT_EQ(got->request.headers, e.request.headers);
  ASSERT_TRUE(got->response);
  EXPECT_EQ(got->response->headers, r.headers);
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

TEST(CaptureStore, ListWithoutBodiesLeavesBodiesEmptyWithTheirSizes) {
  capture_store store(":memory:");
  exchange e = make_exchange("/a");
  e.request.body = {std::string(100'000, 'q'), 250'000, true};
  captured_response& r = e.response.emplace();
  r.status = 200;
  r.headers = {{"Content-Length", "3"}};
  r.body = {"abc", 3, false};
  e.id = store.add(e);

  const std::vector<exchange> light = store.list(10, std::nullopt, /*with_bodies=*/false);
  const std::vector<exchange> full = store.list(10, std::nullopt, /*with_bodies=*/true);

  ASSERT_EQ(light.size(), 1u);
  EXPECT_EQ(light[0].request.body, (captured_body{"", 250'000, true}));
  ASSERT_TRUE(light[0].response);
  EXPECT_EQ(light[0].response->body, (captured_body{"", 3, false}));
  EXPECT_EQ(light[0].response->headers, r.headers);
  exchange without_bodies = e;
  without_bodies.request.body.bytes.clear();
  without_bodies.response->body.bytes.clear();
  EXPECT_EQ(light[0], without_bodies);
  ASSERT_EQ(full.size(), 1u);
  EXPECT_EQ(full[0], e);
}

TEST(CaptureStore, ListWithoutBodiesStillFiltersByTunnelName) {
  capture_store store(":memory:");
  store.add(make_exchange("/a1", "a"));
  store.add(make_exchange("/b1", "b"));

  EXPECT_THAT(targets(store.list(10, "a", false)), ElementsAre("/a1"));
  EXPECT_THAT(targets(store.list(1, std::nullopt, false)), ElementsAre("/b1"));
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

TEST(CaptureStore, IdsAreNotReusedAfterClearingAndReopening) {
  temporary_directory dir;
  auto path = (dir.path() / "inspect.db").string();
  std::int64_t last = 0;
  {
    capture_store store(path);
    store.add(make_exchange("/a"));
    last = store.add(make_exchange("/b"));
    store.clear();
  }
  capture_store reopened(path);
  EXPECT_EQ(reopened.count(), 0u);
  EXPECT_GT(reopened.add(make_exchange("/c")), last);
}

TEST(CaptureStore, BatchIsStoredUnderConsecutiveIds) {
  capture_store store(":memory:");
  std::vector<exchange> batch{make_exchange("/1"), make_exchange("/2"), make_exchange("/3")};

  const std::vector<std::int64_t> ids = store.add(batch);

  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], ids[0] + 1);
  EXPECT_EQ(ids[2], ids[1] + 1);
  EXPECT_THAT(targets(store.list(10)), ElementsAre("/3", "/2", "/1"));
}

TEST(CaptureStore, FileStoreUsesWriteAheadLogging) {
  temporary_directory dir;
  auto path = (dir.path() / "inspect.db").string();
  capture_store store(path);
  store.add(make_exchange("/a"));
  EXPECT_TRUE(std::filesystem::exists(path + "-wal"));
}

// The permission bits of `path`.
mode_t mode_of(const std::filesystem::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// The process's umask, set for one test and put back.
class scoped_umask {
 public:
  explicit scoped_umask(mode_t mask) : previous_(::umask(mask)) {}
  ~scoped_umask() { ::umask(previous_); }
  scoped_umask(const scoped_umask&) = delete;
  scoped_umask& operator=(const scoped_umask&) = delete;

 private:
  mode_t previous_;
};

TEST(CaptureStore, NewFileItsLogsAndTheFoldersMadeForItAreTheOwnersOnly) {
  const scoped_umask usual(022);  // files 0644 and folders 0755 unless asked otherwise
  temporary_directory dir;
  const auto made = dir.path() / "made";
  const std::string path = (made / "deeper" / "captures.db").string();

  capture_store store(path);
  store.add(make_exchange("/a", "web"));

  EXPECT_EQ(mode_of(made), 0700u);
  EXPECT_EQ(mode_of(made / "deeper"), 0700u);
  EXPECT_EQ(mode_of(path), 0600u);
  ASSERT_TRUE(std::filesystem::exists(path + "-wal"));
  ASSERT_TRUE(std::filesystem::exists(path + "-shm"));
  EXPECT_EQ(mode_of(path + "-wal"), 0600u);
  EXPECT_EQ(mode_of(path + "-shm"), 0600u);
}

TEST(CaptureStore, LooserFilesOfAStoreAreNarrowedWithAWarningEach) {
  temporary_directory dir;
  const std::string path = (dir.path() / "captures.db").string();
  capture_store first(path);  // open: its -wal and -shm stay
  first.add(make_exchange("/a"));
  const std::vector<std::string> files = {path, path + "-wal", path + "-shm", path + "-journal"};
  std::ofstream(path + "-journal").close();  // empty: not a journal SQLite would replay
  for (const std::string& f : files) {
    std::filesystem::permissions(f, std::filesystem::perms(0644));
  }
  captured_log log;

  capture_store again(path);

  for (const std::string& f : files) {
    EXPECT_EQ(mode_of(f), 0600u) << f;
    EXPECT_THAT(log.text(), HasSubstr("[warning] " + f + ": narrowed its mode from 0644 to 0600"));
  }
  EXPECT_EQ(again.count(), 1u);
}

TEST(CaptureStore, StoreThatIsTheOwnersOnlyIsOpenedWithoutAWarning) {
  temporary_directory dir;
  const std::string path = (dir.path() / "captures.db").string();
  capture_store(path).add(make_exchange("/a"));
  captured_log log;

  capture_store again(path);

  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(log.text(), "");
}

TEST(CaptureStore, ExistingFolderOfAStoreIsLeftAsItIs) {
  temporary_directory dir;
  const auto shared = dir.path() / "shared";
  std::filesystem::create_directory(shared);
  std::filesystem::permissions(shared, std::filesystem::perms(01777));  // like /tmp

  capture_store(shared / "captures.db").add(make_exchange("/a"));

  EXPECT_EQ(mode_of(shared), 01777u);
  EXPECT_EQ(mode_of(shared / "captures.db"), 0600u);
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

TEST(CaptureStore, FileOfAnOlderPortholeIsEmptiedAndKeepsItsIds) {
  temporary_directory dir;
  auto path = (dir.path() / "old.db").string();
  {
    // Schema 1 kept headers as JSON text.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE exchange (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                           "tunnel_name TEXT NOT NULL, request_headers TEXT NOT NULL);"
                           "CREATE INDEX exchange_by_tunnel ON exchange (tunnel_name, id);"
                           "INSERT INTO exchange VALUES (41, 'web', '[[\"Host\",\"a\"]]');"
                           "PRAGMA application_id=1346916172; PRAGMA user_version=1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }

  capture_store store(path);

  EXPECT_EQ(store.count(), 0u);
  EXPECT_GT(store.add(make_exchange("/new")), 41);
  EXPECT_THAT(targets(store.list(10)), ElementsAre("/new"));
  capture_store reopened(path);
  EXPECT_EQ(reopened.count(), 1u);
}

TEST(CaptureStore, FileOfANewerPortholeIsRefused) {
  temporary_directory dir;
  auto path = (dir.path() / "new.db").string();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE exchange (id INTEGER PRIMARY KEY);"
                           "PRAGMA application_id=1346916172; PRAGMA user_version=99;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    capture_store store(path);
    FAIL() << "opened a newer porthole's store";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("newer porthole"));
  }
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

TEST(CaptureWriter, SubmittedExchangeIsStoredSoonWithoutAFullBatch) {
  capture_writer writer(capture_store(":memory:"),
                        {.batch_entries = 100, .batch_delay = std::chrono::milliseconds(10)});
  ASSERT_TRUE(writer.submit(make_exchange("/alone")));

  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (writer.count() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }

  EXPECT_THAT(targets(writer.list(10)), ElementsAre("/alone"));
}

TEST(CaptureWriter, MoreThanABatchIsStoredInOrder) {
  capture_writer writer(capture_store(":memory:", 1000), {.batch_entries = 4}, /*paused=*/true);
  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back("/" + std::to_string(i));
    ASSERT_TRUE(writer.submit(make_exchange(sent.back())));
  }

  writer.resume();
  writer.stop();

  std::vector<std::string> stored = targets(writer.list(100));
  std::reverse(stored.begin(), stored.end());
  EXPECT_EQ(stored, sent);
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
