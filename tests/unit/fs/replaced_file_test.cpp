#include "fs/replaced_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace porthole::fs {
namespace {

namespace stdfs = std::filesystem;

class ReplacedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = stdfs::temp_directory_path() /
           ("replaced-file-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    stdfs::remove_all(dir_);
    stdfs::create_directories(dir_);
  }
  void TearDown() override { stdfs::remove_all(dir_); }

  static std::string read(const stdfs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  stdfs::path dir_;
};

TEST_F(ReplacedFileTest, EachWriteReplacesTheWholeFileWithMode0644AndNoTemporaryLeft) {
  const auto path = dir_ / "ready.json";
  const mode_t old_umask = ::umask(077);
  replaced_file file(path);
  EXPECT_FALSE(stdfs::exists(path));
  ASSERT_FALSE(file.write("{\"a\":1, \"longer\":true}\n"));
  ASSERT_FALSE(file.write("{\"b\":2}\n"));
  ::umask(old_umask);
  EXPECT_EQ(read(path), "{\"b\":2}\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_FALSE(stdfs::exists(dir_ / "ready.json.tmp"));
}

TEST_F(ReplacedFileTest, IsRemovedWhenItGoes) {
  const auto path = dir_ / "ready.json";
  {
    replaced_file file(path);
    ASSERT_FALSE(file.write("{}\n"));
    EXPECT_TRUE(stdfs::exists(path));
  }
  EXPECT_FALSE(stdfs::exists(path));
}

TEST_F(ReplacedFileTest, RemovesWhatAnEarlierRunLeft) {
  const auto path = dir_ / "ready.json";
  std::ofstream(path) << "{\"pid\":1}\n";
  replaced_file file(path);
  EXPECT_FALSE(stdfs::exists(path));
}

TEST_F(ReplacedFileTest, APathInAFolderThatDoesNotExistIsRefusedNamingIt) {
  const auto path = dir_ / "missing" / "ready.json";
  try {
    replaced_file file(path);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot create " + path.string() + ".tmp: No such file or directory");
  }
}

}  // namespace
}  // namespace porthole::fs
