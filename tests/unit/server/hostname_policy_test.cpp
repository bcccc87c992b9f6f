#include "server/hostname_policy.h"

#include <gtest/gtest.h>

namespace porthole::server {
namespace {

hostname_policy policy(std::vector<std::string> allowed = {}, bool any = false) {
  return {"tunnel.example.com", std::move(allowed), any};
}

TEST(HostnamePolicy, PutsASubdomainBelowTheDomainCaseFolded) {
  const auto c = choose_subdomain("MyApp", policy());
  EXPECT_EQ(c.host, "myapp.tunnel.example.com");
  EXPECT_EQ(c.error, "");
}

TEST(HostnamePolicy, RefusesASubdomainWithDots) {
  const auto c = choose_subdomain("a.b", policy());
  EXPECT_EQ(c.host, "");
  EXPECT_EQ(c.error, "Invalid subdomain 'a.b': a subdomain is one DNS label, without dots.");
}

TEST(HostnamePolicy, RefusesASubdomainThatIsNotADnsLabel) {
  for (const char* bad : {"", "-a", "a-", "a_b", "a b", "a/b", "a:80", "Ã©tÃ©"}) {
    const auto c = choose_subdomain(bad, policy());
    EXPECT_EQ(c.host, "") << bad;
    EXPECT_TRUE(c.error.starts_with("Invalid subdomain '" + std::string(bad) + "': use 1 to 63"))
        << c.error;
  }
  EXPECT_NE(choose_subdomain(std::string(64, 'x'), policy()).error, "");
  EXPECT_EQ(choose_subdomain(std::string(63, 'x'), policy()).error, "");
}

TEST(HostnamePolicy, RefusesASubdomainWhoseFullNameIsLongerThan253) {
  hostname_policy p = policy();
  p.domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c');
  const auto c = choose_subdomain(std::string(63, 'x'), p);
  EXPECT_EQ(c.host, "");
  EXPECT_NE(c.error.find("longer than 253 characters"), std::string::npos) << c.error;
}

TEST(HostnamePolicy, RefusesTheServersOwnNameEvenWhenAnyHostnameIsAllowed) {
  for (const auto& p : {policy(), policy({"*.example.com"}, true)}) {
    const auto c = choose_hostname("Tunnel.Example.COM", p);
    EXPECT_EQ(c.host, "");
    EXPECT_EQ(c.error,
              "Hostname tunnel.example.com is this server's own name and cannot be a tunnel; "
              "ask for a subdomain of it instead.");
  }
}

TEST(HostnamePolicy, AcceptsAHostnameOneLabelBelowTheDomain) {
  EXPECT_EQ(choose_hostname("Foo.tunnel.example.com", policy()).host, "foo.tunnel.example.com");
}

TEST(HostnamePolicy, RefusesAHostnameSeveralLabelsBelowTheDomain) {
  const auto c = choose_hostname("a.foo.tunnel.example.com", policy());
  EXPECT_EQ(c.host, "");
  EXPECT_EQ(c.error,
            "Hostname a.foo.tunnel.example.com is more than one label below tunnel.example.com; "
            "this server gives out <name>.tunnel.example.com only.");
}

TEST(HostnamePolicy, RefusesAHostnameOutsideTheDomainByDefault) {
  const auto c = choose_hostname("www.bank.com", policy());
  EXPECT_EQ(c.host, "");
  EXPECT_EQ(c.error,
            "Hostname www.bank.com is outside this server's domain tunnel.example.com; ask for a "
            "subdomain, or ask the operator to allow it (--allow-hostname).");
}

TEST(HostnamePolicy, RefusesANameThatMerelyEndsLikeTheDomain) {
  EXPECT_NE(choose_hostname("eviltunnel.example.com", policy()).error, "");
}

TEST(HostnamePolicy, AcceptsAnAllowedExactName) {
  EXPECT_EQ(choose_hostname("App.Example.org", policy({"app.example.org"})).host,
            "app.example.org");
  EXPECT_NE(choose_hostname("x.app.example.org", policy({"app.example.org"})).error, "");
}

TEST(HostnamePolicy, AcceptsNamesBelowAnAllowedWildcardButNotTheSuffixItself) {
  const auto p = policy({"*.example.org"});
  EXPECT_EQ(choose_hostname("a.example.org", p).host, "a.example.org");
  EXPECT_EQ(choose_hostname("a.b.example.org", p).host, "a.b.example.org");
  EXPECT_NE(choose_hostname("example.org", p).error, "");
  EXPECT_NE(choose_hostname("badexample.org", p).error, "");
}

TEST(HostnamePolicy, AcceptsAnyValidHostnameWhenAllowed) {
  EXPECT_EQ(choose_hostname("www.anything.net", policy({}, true)).host, "www.anything.net");
  EXPECT_NE(choose_hostname("bad_name.net", policy({}, true)).error, "");
}

TEST(HostnamePolicy, RefusesAnInvalidHostname) {
  const auto c = choose_hostname("a..b", policy({}, true));
  EXPECT_EQ(c.error,
            "Invalid hostname 'a..b': use DNS labels of 1 to 63 letters, digits and '-', "
            "separated by dots, at most 253 characters.");
}

}  // namespace
}  // namespace porthole::server
