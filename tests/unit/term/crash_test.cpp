#include "term/crash.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <stdexcept>

namespace porthole::term {
namespace {

// The crashes themselves are tested on the real client in a real terminal
// (tests/integration/test_crash_report.py); here, the hook that names them.

struct env_var {
  explicit env_var(const char* value) {
    if (value != nullptr) {
      setenv("PORTHOLE_CRASH", value, 1);
    } else {
      unsetenv("PORTHOLE_CRASH");
    }
  }
  ~env_var() { unsetenv("PORTHOLE_CRASH"); }
};

TEST(CrashKindFromEnv, UnsetOrEmptyIsNone) {
  {
    env_var unset(nullptr);
    EXPECT_EQ(crash_kind_from_env(), std::nullopt);
  }
  env_var empty("");
  EXPECT_EQ(crash_kind_from_env(), std::nullopt);
}

TEST(CrashKindFromEnv, NamesEachKind) {
  const std::pair<const char*, crash_kind> kinds[] = {
      {"segv", crash_kind::segv},
      {"bus", crash_kind::bus},
      {"ill", crash_kind::ill},
      {"fpe", crash_kind::fpe},
      {"abort", crash_kind::abort},
      {"stack-overflow", crash_kind::stack_overflow},
      {"exception", crash_kind::exception},
      {"thread-exception", crash_kind::thread_exception},
  };
  for (const auto& [name, kind] : kinds) {
    env_var set(name);
    EXPECT_EQ(crash_kind_from_env(), kind) << name;
  }
}

TEST(CrashKindFromEnv, AnUnknownKindIsAnErrorListingTheKinds) {
  env_var set("explode");
  try {
    crash_kind_from_env();
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("unknown kind 'explode'"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("segv, bus, ill, fpe, abort, stack-overflow"));
  }
}

TEST(WriteToTerminal, WritesTheBytesWhileNoReportHasBegun) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_TRUE(write_to_terminal(fds[1], "frame"));
  char buf[8] = {};
  ASSERT_EQ(read(fds[0], buf, sizeof buf), 5);
  EXPECT_STREQ(buf, "frame");
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace porthole::term
