#include "client/state_directory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "client/config_file.h"
#include "support/captured_log.h"
#include "support/temporary_directory.h"

namespace porthole::client {
namespace {

namespace fs = std::filesystem;
using porthole::testing::captured_log;
using porthole::testing::temporary_directory;
using ::testing::HasSubstr;

mode_t mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(StateDirectory, IsDotPortholeInTheHomeDirectory) {
  EXPECT_EQ(state_directory(), default_config_path().parent_path() / ".porthole");
}

TEST(StateDirectory, MissingOneIsCreatedForItsOwnerOnly) {
  temporary_directory home;
  const fs::path dir = home.path() / "missing-home" / ".porthole";
  const mode_t mask = ::umask(022);

  make_private_directory(dir);

  ::umask(mask);
  EXPECT_EQ(mode_of(dir), 0700u);
}

TEST(StateDirectory, LooserOneIsNarrowedWithAWarningNamingItsMode) {
  temporary_directory home;
  const fs::path dir = home.path() / ".porthole";
  fs::create_directory(dir);
  fs::permissions(dir, fs::perms(0755));
  captured_log log;

  make_private_directory(dir);

  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_THAT(log.text(),
              HasSubstr("[warning] " + dir.string() + ": narrowed its mode from 0755 to 0700"));
}

TEST(StateDirectory, OwnersOnlyOneIsLeftAsItIsWithoutAWord) {
  temporary_directory home;
  const fs::path dir = home.path() / ".porthole";
  fs::create_directory(dir);
  fs::permissions(dir, fs::perms(0700));
  captured_log log;

  make_private_directory(dir);

  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(log.text(), "");
}

}  // namespace
}  // namespace porthole::client
