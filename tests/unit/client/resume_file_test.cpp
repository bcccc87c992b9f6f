#include "client/resume_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace porthole::client {
namespace {

namespace fs = std::filesystem;

class ResumeFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("resume-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

tunnel_spec web(std::string subdomain) {
  tunnel_spec t;
  t.name = "http";
  t.protocol = "http";
  t.local_port = "8080";
  t.subdomain = std::move(subdomain);
  return t;
}

TEST(ResumeKey, IsTheSameForTheSameServerAndTunnelsInAnyOrder) {
  tunnel_spec a = web("a");
  tunnel_spec b = web("b");
  b.name = "other";
  EXPECT_EQ(resume_key("s:443", {a, b}), resume_key("s:443", {b, a}));
  EXPECT_EQ(resume_key("s:443", {a}).size(), 32u);
}

TEST(ResumeKey, DiffersForAnotherServerOrAnotherTunnel) {
  EXPECT_NE(resume_key("s:443", {web("a")}), resume_key("t:443", {web("a")}));
  EXPECT_NE(resume_key("s:443", {web("a")}), resume_key("s:443", {web("b")}));
}

TEST_F(ResumeFileTest, AnIdSavedByOneRunIsReadByTheNext) {
  {
    resume_file first(dir_, "k");
    ASSERT_TRUE(first.usable()) << first.why_not();
    EXPECT_EQ(first.client_id(), "");
    first.save("0123abcd");
  }
  resume_file next(dir_, "k");
  ASSERT_TRUE(next.usable());
  EXPECT_EQ(next.client_id(), "0123abcd");
}

TEST_F(ResumeFileTest, FolderAndFileItMakesAreTheOwnersOnly) {
  const mode_t mask = ::umask(022);
  resume_file f(dir_, "k");
  ::umask(mask);
  ASSERT_TRUE(f.usable()) << f.why_not();
  EXPECT_EQ(fs::status(dir_).permissions(), fs::perms::owner_all);
  EXPECT_EQ(fs::status(dir_ / "k.id").permissions(),
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(ResumeFileTest, ASecondClientAliveAtTheSameTimeGetsNothing) {
  resume_file first(dir_, "k");
  first.save("0123abcd");
  resume_file second(dir_, "k");
  EXPECT_FALSE(second.usable());
  EXPECT_EQ(second.client_id(), "");
  EXPECT_NE(second.why_not().find("in use by another running client"), std::string::npos);
  second.save("ffff");  // does nothing
  EXPECT_EQ(first.client_id(), "0123abcd");
}

TEST_F(ResumeFileTest, ContentNoServerCouldHaveGivenIsIgnored) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "k.id") << "not an id!\n";
  resume_file f(dir_, "k");
  ASSERT_TRUE(f.usable());
  EXPECT_EQ(f.client_id(), "");
}

TEST_F(ResumeFileTest, ANewIdReplacesTheOldOneWhole) {
  {
    resume_file f(dir_, "k");
    f.save("aaaaaaaaaaaaaaaaaaaaaaaa");
    f.save("bb");
  }
  resume_file f(dir_, "k");
  EXPECT_EQ(f.client_id(), "bb");
}

}  // namespace
}  // namespace porthole::client
