#include "server/token_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "server/authtokens.h"

namespace porthole::server {
namespace {

class TokenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/token_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path db() const { return dir_ / "state" / "tokens.db"; }

  std::string file_bytes(const std::filesystem::path& p) const {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  std::filesystem::path dir_;
};

TEST_F(TokenStoreTest, AddedTokenIsFoundByItselfAndListedWithItsSettings) {
  token_store store(db(), true);
  auto [token, rec] = store.add({"ci", {"Blog", "api"}, 3, std::nullopt, 0});
  EXPECT_TRUE(token.starts_with("ph_"));
  EXPECT_EQ(token.size(), 3u + 48u);
  EXPECT_EQ(rec.prefix, token.substr(0, rec.prefix.size()));

  auto found = store.lookup(token);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, rec.id);
  EXPECT_EQ(found->name, "ci");
  EXPECT_EQ(found->subdomains, (std::vector<std::string>{"api", "blog"}));
  EXPECT_EQ(found->max_tunnels, 3u);
  EXPECT_EQ(found->max_tcp_ports, std::nullopt);
  EXPECT_EQ(found->max_conns, 0u);

  auto all = store.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, rec.id);
  EXPECT_EQ(all[0].subdomains, (std::vector<std::string>{"api", "blog"}));
  EXPECT_EQ(all[0].last_used, std::nullopt);
}

TEST_F(TokenStoreTest, UnknownTokenIsNotFound) {
  token_store store(db(), true);
  store.add({});
  EXPECT_FALSE(store.lookup("ph_000000000000000000000000000000000000000000000000"));
  EXPECT_FALSE(store.lookup(""));
}

TEST_F(TokenStoreTest, FileHoldsTheHashNotTheToken) {
  std::string token;
  {
    token_store store(db(), true);
    token = store.add({"x", {}, {}, {}, {}}).first;
  }
  const std::string bytes = file_bytes(db());
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find(token), std::string::npos);
  EXPECT_EQ(bytes.find(token.substr(3)), std::string::npos);  // nor its hex part
  EXPECT_NE(bytes.find(hash_token(token)), std::string::npos);
  EXPECT_EQ(hash_token(token).size(), 32u);
}

TEST_F(TokenStoreTest, RevokedTokenIsNotFoundAndItsIdIsNotReused) {
  token_store store(db(), true);
  auto [token, rec] = store.add({"a", {"blog"}, {}, {}, {}});
  EXPECT_TRUE(store.revoke(rec.id));
  EXPECT_FALSE(store.revoke(rec.id));
  EXPECT_FALSE(store.lookup(token));
  EXPECT_TRUE(store.list().empty());
  EXPECT_TRUE(store.ever_had_tokens());
  auto [token2, rec2] = store.add({"b", {"blog"}, {}, {}, {}});  // its subdomain is free again
  EXPECT_GT(rec2.id, rec.id);
}

TEST_F(TokenStoreTest, SubdomainReservedByAnotherTokenIsRefusedNamingIt) {
  token_store store(db(), true);
  auto [token, rec] = store.add({"owner", {"blog"}, {}, {}, {}});
  try {
    store.add({"other", {"api", "BLOG"}, {}, {}, {}});
    FAIL() << "a reserved subdomain was given to a second token";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'blog'"), std::string::npos) << what;
    EXPECT_NE(what.find("token " + std::to_string(rec.id) + " 'owner'"), std::string::npos) << what;
  }
  EXPECT_EQ(store.list().size(), 1u);  // nothing of the refused token was stored
}

TEST_F(TokenStoreTest, BadNameOrSubdomainIsRefused) {
  token_store store(db(), true);
  EXPECT_THROW(store.add({"1abc", {}, {}, {}, {}}), std::invalid_argument);
  EXPECT_THROW(store.add({"a b", {}, {}, {}, {}}), std::invalid_argument);
  EXPECT_THROW(store.add({"", {"a.b"}, {}, {}, {}}), std::invalid_argument);
  EXPECT_THROW(store.add({"", {"-a"}, {}, {}, {}}), std::invalid_argument);
  EXPECT_THROW(store.add({"", {""}, {}, {}, {}}), std::invalid_argument);
  EXPECT_FALSE(store.ever_had_tokens());
}

TEST_F(TokenStoreTest, MissingFileIsNotCreatedWithoutCreate) {
  EXPECT_THROW(token_store(db(), false), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(db()));
}

TEST_F(TokenStoreTest, FileThatIsNotATokenStoreIsRefused) {
  std::filesystem::create_directories(db().parent_path());
  std::ofstream(db()) << "not a database at all, just some text of sufficient length......";
  EXPECT_THROW(token_store(db(), false), std::runtime_error);
}

TEST_F(TokenStoreTest, ChangedSaysWhenAnotherConnectionWrote) {
  token_store reader(db(), true);
  EXPECT_FALSE(reader.changed());
  token_store writer(db(), false);
  writer.add({});
  EXPECT_TRUE(reader.changed());
  EXPECT_FALSE(reader.changed());
  EXPECT_TRUE(reader.touch(1, 1234));  // its own write is no change for itself
  EXPECT_FALSE(reader.changed());
  EXPECT_EQ(writer.list().at(0).last_used, 1234);
}

// authtokens: the server's view of tokens.db and an --authtokens file.

token_limits defaults() {
  return {5, 2, 100};
}

TEST_F(TokenStoreTest, ServerWithoutTokensAcceptsAnyClientWithoutAccounting) {
  authtokens tokens({}, std::make_shared<tokens_db_source>(db()), defaults());
  EXPECT_FALSE(tokens.refresh());
  EXPECT_FALSE(tokens.required());
  auto who = tokens.check("anything");
  ASSERT_TRUE(who);
  EXPECT_TRUE(who->key.empty());
}

TEST_F(TokenStoreTest, ServerFollowsTokensAddedAndRevokedWhileItRuns) {
  authtokens tokens({}, std::make_shared<tokens_db_source>(db()), defaults());
  tokens.refresh();
  token_store admin(db(), true);
  auto [token, rec] = admin.add({"ci", {"blog"}, 1, {}, {}});
  EXPECT_TRUE(tokens.refresh());
  EXPECT_TRUE(tokens.required());
  EXPECT_FALSE(tokens.check("wrong"));
  auto who = tokens.check(token);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->db_id, rec.id);
  EXPECT_EQ(who->limits.max_tunnels, 1u);  // its own
  EXPECT_TRUE(who->own_tunnels);
  EXPECT_EQ(who->limits.max_tcp_ports, 2u);  // the server's default
  EXPECT_FALSE(who->own_tcp_ports);
  EXPECT_EQ(tokens.reserved_by("BLOG"), who->key);
  EXPECT_EQ(tokens.reserved_by("api"), "");
  EXPECT_TRUE(tokens.live(*who));

  EXPECT_FALSE(tokens.refresh());
  admin.revoke(rec.id);
  EXPECT_TRUE(tokens.refresh());
  EXPECT_FALSE(tokens.live(*who));
  EXPECT_FALSE(tokens.check(token));
  EXPECT_EQ(tokens.reserved_by("blog"), "");
  // Revoking the last token does not open the server to anyone.
  EXPECT_TRUE(tokens.required());
  EXPECT_FALSE(tokens.check("anything"));
}

TEST_F(TokenStoreTest, FileTokensAndDbTokensWorkTogether) {
  token_store admin(db(), true);
  auto [token, rec] = admin.add({});
  authtokens tokens({"one", "two"}, std::make_shared<tokens_db_source>(db()), defaults());
  tokens.refresh();
  EXPECT_TRUE(tokens.check(token));
  auto two = tokens.check("two");
  ASSERT_TRUE(two);
  EXPECT_EQ(two->key, "file:2");
  EXPECT_EQ(two->limits.max_tunnels, 5u);
  EXPECT_FALSE(two->db_id);
  EXPECT_FALSE(tokens.check("three"));
  EXPECT_FALSE(tokens.check("tw"));
}

TEST_F(TokenStoreTest, ServerRecordsLastUse) {
  token_store admin(db(), true);
  auto [token, rec] = admin.add({});
  authtokens tokens({}, std::make_shared<tokens_db_source>(db()), defaults());
  tokens.refresh();
  tokens.record_use(*tokens.check(token));
  tokens.flush_uses();
  ASSERT_TRUE(admin.list().at(0).last_used);
  EXPECT_GT(*admin.list().at(0).last_used, 1700000000);
}

TEST_F(TokenStoreTest, ServerRefusesToStartOnAnUnreadableTokenFile) {
  std::filesystem::create_directories(db().parent_path());
  std::ofstream(db()) << "garbage garbage garbage garbage garbage garbage garbage garbage";
  authtokens tokens({}, std::make_shared<tokens_db_source>(db()), defaults());
  EXPECT_THROW(tokens.refresh(), std::runtime_error);
}

}  // namespace
}  // namespace porthole::server
