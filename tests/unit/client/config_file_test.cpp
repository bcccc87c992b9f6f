#include "client/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "support/temporary_directory.h"

namespace porthole::client {
namespace {

using ::testing::HasSubstr;

// The example from the ngrok 1.3 announcement, unchanged.
constexpr const char* ngrok_announcement = R"(authtoken: "..."
tunnels:
  blog:
    proto:
      http: 4000
      https: 4000
  api:
    auth: "user:password"
    proto:
      https: 8080
  personal:
    hostname: "example.com"
    proto:
      http: 9090
  ssh:
    proto:
      tcp: 22
)";

config_file parse(std::string_view text) {
  return parse_config(text, "porthole.yml");
}

// The message of the config_error that parsing `text` throws, or "" if none.
std::string error_of(std::string_view text) {
  try {
    parse(text);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

std::string select_error(const config_file& file, const std::vector<std::string>& names) {
  try {
    select_tunnels(file, names);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

void write_file(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// ---- what loads ----

TEST(ConfigFile, LoadsTheNgrokAnnouncementExampleWithOneSpecPerProtocol) {
  const config_file cfg = parse(ngrok_announcement);
  EXPECT_EQ(cfg.authtoken, "...");
  ASSERT_EQ(cfg.tunnels.size(), 4u);
  EXPECT_EQ(cfg.tunnels[0].name, "blog");
  EXPECT_EQ(cfg.tunnels[1].name, "api");
  EXPECT_EQ(cfg.tunnels[2].name, "personal");
  EXPECT_EQ(cfg.tunnels[3].name, "ssh");
  EXPECT_EQ(all_tunnels(cfg).size(), 5u);
}

TEST(ConfigFile, TunnelWithHttpAndHttpsGivesTwoSpecsNamedAfterIt) {
  const config_file cfg = parse(ngrok_announcement);
  const auto& blog = cfg.tunnels[0].specs;
  ASSERT_EQ(blog.size(), 2u);
  EXPECT_EQ(blog[0].protocol, "http");
  EXPECT_EQ(blog[1].protocol, "https");
  for (const auto& spec : blog) {
    EXPECT_EQ(spec.name, "blog");
    EXPECT_EQ(spec.subdomain, "blog");
    EXPECT_EQ(spec.hostname, "");
    EXPECT_EQ(spec.local_host, "localhost");
    EXPECT_EQ(spec.local_port, "4000");
  }
}

TEST(ConfigFile, TunnelAuthIsCarriedToItsSpecs) {
  const config_file cfg = parse(ngrok_announcement);
  const named_tunnel* api = cfg.find("api");
  ASSERT_NE(api, nullptr);
  ASSERT_EQ(api->specs.size(), 1u);
  EXPECT_EQ(api->specs[0].protocol, "https");
  EXPECT_EQ(api->specs[0].http_auth, "user:password");
  EXPECT_EQ(api->specs[0].subdomain, "api");
  EXPECT_EQ(api->specs[0].local_port, "8080");
}

TEST(ConfigFile, GivenHostnameReplacesTheNameAsSubdomain) {
  const config_file cfg = parse(ngrok_announcement);
  const auto& personal = cfg.find("personal")->specs;
  ASSERT_EQ(personal.size(), 1u);
  EXPECT_EQ(personal[0].hostname, "example.com");
  EXPECT_EQ(personal[0].subdomain, "");
}

TEST(ConfigFile, TcpTunnelTakesNoSubdomainFromItsName) {
  const config_file cfg = parse(ngrok_announcement);
  const auto& ssh = cfg.find("ssh")->specs;
  ASSERT_EQ(ssh.size(), 1u);
  EXPECT_EQ(ssh[0].protocol, "tcp");
  EXPECT_EQ(ssh[0].local_port, "22");
  EXPECT_EQ(ssh[0].subdomain, "");
  EXPECT_EQ(ssh[0].hostname, "");
  EXPECT_EQ(ssh[0].remote_port, 0);
}

TEST(ConfigFile, TunnelNameWithADotBecomesItsHostname) {
  const auto cfg = parse("tunnels:\n  shop.example.org:\n    proto:\n      https: 3000\n");
  const auto& spec = cfg.tunnels.at(0).specs.at(0);
  EXPECT_EQ(spec.hostname, "shop.example.org");
  EXPECT_EQ(spec.subdomain, "");
}

TEST(ConfigFile, GivenSubdomainReplacesTheName) {
  const auto cfg = parse("tunnels:\n  blog:\n    subdomain: myblog\n    proto:\n      http: 80\n");
  EXPECT_EQ(cfg.tunnels.at(0).specs.at(0).subdomain, "myblog");
}

TEST(ConfigFile, TcpRemotePortIsCarriedToTheTcpSpec) {
  const auto cfg = parse("tunnels:\n  ssh:\n    remote_port: 2222\n    proto:\n      tcp: 22\n");
  EXPECT_EQ(cfg.tunnels.at(0).specs.at(0).remote_port, 2222);
}

TEST(ConfigFile, LocalAddressesTakeEveryForm) {
  const auto cfg = parse(R"(tunnels:
  a: {proto: {http: 4000}}
  b: {proto: {http: "4000"}}
  c: {proto: {http: "localhost:4001"}}
  d: {proto: {http: "[::1]:4002"}}
  e: {proto: {http: 192.168.1.2:80}}
)");
  ASSERT_EQ(cfg.tunnels.size(), 5u);
  const auto local = [&](std::size_t i) { return cfg.tunnels[i].specs.at(0).local_addr(); };
  EXPECT_EQ(local(0), "localhost:4000");
  EXPECT_EQ(local(1), "localhost:4000");
  EXPECT_EQ(local(2), "localhost:4001");
  EXPECT_EQ(local(3), "::1:4002");
  EXPECT_EQ(cfg.tunnels[3].specs[0].local_host, "::1");
  EXPECT_EQ(local(4), "192.168.1.2:80");
}

TEST(ConfigFile, KeepsTunnelsInFileOrder) {
  const auto cfg = parse(
      "tunnels:\n  zeta: {proto: {http: 1}}\n  alpha: {proto: {http: 2}}\n  mid: {proto: {tcp: "
      "3}}\n");
  ASSERT_EQ(cfg.tunnels.size(), 3u);
  EXPECT_EQ(cfg.tunnels[0].name, "zeta");
  EXPECT_EQ(cfg.tunnels[1].name, "alpha");
  EXPECT_EQ(cfg.tunnels[2].name, "mid");
}

TEST(ConfigFile, ReadsEveryTopLevelSetting) {
  const auto cfg = parse_config(R"(server_addr: tunnel.example.com:4443
authtoken: secret
trust_ca: /etc/porthole/ca.pem
http_proxy: http://user:pw@proxy.corp:3128
inspect_addr: 127.0.0.1:4040
pool_size: 20
local_idle_conns: 0
local_idle_timeout: 30
threads: 3
log: stderr
log_level: debug
inspect_body_limit: 65536
inspect_keep: 500
inspect_db: /var/lib/porthole/inspect.db
trust_host_root_certs: true
)",
                                "/home/u/.porthole.yml");
  EXPECT_EQ(cfg.path, "/home/u/.porthole.yml");
  EXPECT_EQ(cfg.server_addr, "tunnel.example.com:4443");
  EXPECT_EQ(cfg.authtoken, "secret");
  EXPECT_EQ(cfg.trust_ca, "/etc/porthole/ca.pem");
  EXPECT_EQ(cfg.http_proxy, "http://user:pw@proxy.corp:3128");
  EXPECT_EQ(cfg.inspect_addr, "127.0.0.1:4040");
  EXPECT_EQ(cfg.pool_size, 20);
  EXPECT_EQ(cfg.local_idle_conns, 0u);
  EXPECT_EQ(cfg.local_idle_timeout, 30);
  EXPECT_EQ(cfg.threads, 3u);
  EXPECT_EQ(cfg.log, "stderr");
  EXPECT_EQ(cfg.log_level, "debug");
  EXPECT_EQ(cfg.inspect_body_limit, 65536u);
  EXPECT_EQ(cfg.inspect_keep, 500u);
  EXPECT_EQ(cfg.inspect_db, "/var/lib/porthole/inspect.db");
  EXPECT_TRUE(cfg.trust_host_root_certs);
  EXPECT_TRUE(cfg.tunnels.empty());
}

TEST(ConfigFile, SettingsLeftOutAreEmpty) {
  const auto cfg = parse("tunnels:\n  a: {proto: {http: 1}}\n");
  EXPECT_FALSE(cfg.server_addr);
  EXPECT_FALSE(cfg.authtoken);
  EXPECT_FALSE(cfg.pool_size);
  EXPECT_FALSE(cfg.inspect_addr);
  EXPECT_FALSE(cfg.log);
  EXPECT_FALSE(cfg.trust_host_root_certs);
}

TEST(ConfigFile, ServerAddrWithoutPortIsAccepted) {
  EXPECT_EQ(parse("server_addr: tunnel.example.com\n").server_addr, "tunnel.example.com");
}

TEST(ConfigFile, AcceptsNgrokAuthTokenSpelling) {
  EXPECT_EQ(parse("auth_token: abc123\n").authtoken, "abc123");
}

TEST(ConfigFile, AcceptsInspectAddrDisabled) {
  EXPECT_EQ(parse("inspect_addr: disabled\n").inspect_addr, "disabled");
}

TEST(ConfigFile, AcceptsNgrokTrustHostRootCerts) {
  EXPECT_FALSE(parse("trust_host_root_certs: false\n").trust_host_root_certs);
  EXPECT_TRUE(parse("trust_host_root_certs: yes\n").trust_host_root_certs);
}

TEST(ConfigFile, LoadsAnNgrok1ConfigurationFile) {
  const auto cfg = parse(R"(server_addr: ngrokd.example.com:4443
trust_host_root_certs: true
auth_token: abc
inspect_addr: disabled
http_proxy: "http://proxy:3128"
tunnels:
  www.example.net:
    proto:
      http: 127.0.0.1:8000
  db:
    remote_port: 5433
    proto:
      tcp: 5432
)");
  EXPECT_EQ(cfg.authtoken, "abc");
  ASSERT_EQ(cfg.tunnels.size(), 2u);
  EXPECT_EQ(cfg.tunnels[0].specs.at(0).hostname, "www.example.net");
  EXPECT_EQ(cfg.tunnels[0].specs.at(0).local_addr(), "127.0.0.1:8000");
  EXPECT_EQ(cfg.tunnels[1].specs.at(0).remote_port, 5433);
}

TEST(ConfigFile, EmptyFileIsAConfigWithNoTunnels) {
  EXPECT_TRUE(parse("").tunnels.empty());
  EXPECT_TRUE(parse("# only a comment\n\n").tunnels.empty());
  EXPECT_TRUE(parse("tunnels:\n").tunnels.empty());
}

TEST(ConfigFile, RelativePathsAreTakenFromTheFilesDirectory) {
  const auto cfg = parse_config(
      "trust_ca: certs/ca.pem\nlog: porthole.log\ninspect_db: i.db\nready_file: run/ready.json\n",
      "/etc/porthole/client.yml");
  EXPECT_EQ(cfg.trust_ca, "/etc/porthole/certs/ca.pem");
  EXPECT_EQ(cfg.log, "/etc/porthole/porthole.log");
  EXPECT_EQ(cfg.inspect_db, "/etc/porthole/i.db");
  EXPECT_EQ(cfg.ready_file, "/etc/porthole/run/ready.json");
}

TEST(ConfigFile, InMemoryInspectDbIsNotAPath) {
  EXPECT_EQ(parse_config("inspect_db: \":memory:\"\n", "/etc/porthole/client.yml").inspect_db,
            ":memory:");
}

TEST(ConfigFile, TildeInAPathIsTheHomeDirectory) {
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(parse("trust_ca: ~/ca.pem\n").trust_ca, "/home/someone/ca.pem");
}

TEST(ConfigFile, DefaultPathIsDotPortholeYmlInHome) {
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(default_config_path(), "/home/someone/.porthole.yml");
}

// ---- errors: each names the file, line and column ----

TEST(ConfigFileError, UnknownTopLevelKeyListsTheValidOnes) {
  EXPECT_EQ(error_of("authtoken: x\nserver_adr: a:1\n"),
            "porthole.yml:2:1: unknown key 'server_adr' (expected one of: server_addr, authtoken, "
            "auth_token, trust_ca, trust_host_root_certs, http_proxy, pool_size, local_idle_conns, "
            "local_idle_timeout, threads, inspect_addr, inspect_db, inspect_body_limit, "
            "inspect_keep, log, "
            "log_level, ready_file, tunnels; did you mean 'server_addr'?)");
}

TEST(ConfigFileError, UnknownTunnelKeyNamesTheTunnel) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    subdomian: b\n    proto:\n      http: 80\n"),
            "porthole.yml:3:5: unknown key 'subdomian' in tunnel 'blog' (expected one of: proto, "
            "subdomain, hostname, auth, upstream, remote_port; did you mean 'subdomain'?)");
}

TEST(ConfigFileError, UnknownKeyFarFromAnyValidOneHasNoSuggestion) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    colour: red\n"),
            "porthole.yml:3:5: unknown key 'colour' in tunnel 'blog' (expected one of: proto, "
            "subdomain, hostname, auth, upstream, remote_port)");
}

TEST(ConfigFileError, UnknownProtocol) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      htp: 80\n"),
            "porthole.yml:4:7: tunnel 'blog': unknown protocol 'htp' in 'proto' (expected one of: "
            "http, https, tcp; did you mean 'http'?)");
}

TEST(ConfigFileError, ProtoThatIsNotAMap) {
  EXPECT_EQ(error_of("tunnels:\n  api:\n    proto: http\n"),
            "porthole.yml:3:12: tunnel 'api': 'proto' must be a map of http, https or tcp to a "
            "local [host:]port, as in 'http: 8080' (got 'http')");
}

TEST(ConfigFileError, TunnelWithoutProto) {
  EXPECT_EQ(error_of("tunnels:\n  api:\n    subdomain: x\n"),
            "porthole.yml:2:3: tunnel 'api': no 'proto' (a map of http, https or tcp to a local "
            "[host:]port, as in 'http: 8080')");
  EXPECT_EQ(error_of("tunnels:\n  api:\n"),
            "porthole.yml:2:3: tunnel 'api': no 'proto' (a map of http, https or tcp to a local "
            "[host:]port, as in 'http: 8080')");
}

TEST(ConfigFileError, LocalPortOutOfRange) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      http: 70000\n"),
            "porthole.yml:4:13: tunnel 'blog': http: bad port '70000' (want 1-65535)");
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      tcp: localhost:0\n"),
            "porthole.yml:4:12: tunnel 'blog': tcp: bad port '0' (want 1-65535)");
}

TEST(ConfigFileError, LocalPortThatIsNotANumber) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      http: web\n"),
            "porthole.yml:4:13: tunnel 'blog': http: bad port 'web' (want 1-65535)");
}

TEST(ConfigFileError, UnbracketedIpv6LocalAddress) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      http: \"::1:80\"\n"),
            "porthole.yml:4:13: tunnel 'blog': http: put an IPv6 address in brackets, as in "
            "'[::1]:8080' (got '::1:80')");
}

TEST(ConfigFileError, UnquotedIpv6LocalAddressIsAYamlSyntaxError) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      http: [::1]:80\n"),
            "porthole.yml:4:18: YAML syntax error: end of map not found");
}

TEST(ConfigFileError, LongValuesAreShortenedInMessages) {
  EXPECT_EQ(
      error_of("pool_size: " + std::string(100, 'x') + "\n"),
      "porthole.yml:1:12: 'pool_size' must be an integer (got '" + std::string(40, 'x') + "...')");
}

TEST(ConfigFileError, LocalIdleTimeoutOfZeroIsOutOfRange) {
  const std::string e = error_of("local_idle_timeout: 0\n");
  EXPECT_NE(e.find("porthole.yml:1:21: 'local_idle_timeout'"), std::string::npos) << e;
}

TEST(ConfigFileError, ThreadsOfZeroIsOutOfRange) {
  const std::string e = error_of("threads: 0\n");
  EXPECT_NE(e.find("porthole.yml:1:10: 'threads'"), std::string::npos) << e;
}

TEST(ConfigFileError, RemotePortOutOfRange) {
  EXPECT_EQ(error_of("tunnels:\n  ssh:\n    remote_port: 70000\n    proto: {tcp: 22}\n"),
            "porthole.yml:3:18: tunnel 'ssh': bad port '70000' for remote_port (want 1-65535)");
}

TEST(ConfigFileError, RemotePortOnATunnelWithoutTcp) {
  EXPECT_EQ(error_of("tunnels:\n  web:\n    remote_port: 8080\n    proto: {http: 80}\n"),
            "porthole.yml:3:5: tunnel 'web': 'remote_port' is only for tcp, and 'proto' has no "
            "tcp");
}

TEST(ConfigFileError, AuthOnATcpOnlyTunnel) {
  EXPECT_EQ(error_of("tunnels:\n  ssh:\n    auth: \"a:b\"\n    proto: {tcp: 22}\n"),
            "porthole.yml:3:5: tunnel 'ssh': 'auth' is only for http and https, and 'proto' has "
            "neither");
}

TEST(ConfigFileError, AuthWithoutColonDoesNotRepeatTheSecret) {
  const std::string error =
      error_of("tunnels:\n  api:\n    auth: hunter2\n    proto:\n      https: 8080\n");
  EXPECT_EQ(error, "porthole.yml:3:11: tunnel 'api': 'auth' must be \"user:password\", with a ':'");
}

TEST(ConfigFileError, WrongTypeForAnInteger) {
  EXPECT_EQ(error_of("pool_size: ten\n"),
            "porthole.yml:1:12: 'pool_size' must be an integer (got 'ten')");
  EXPECT_EQ(error_of("pool_size: [1, 2]\n"),
            "porthole.yml:1:12: 'pool_size' must be an integer (got a list)");
}

TEST(ConfigFileError, IntegerOutOfRange) {
  EXPECT_EQ(error_of("\npool_size: 0\n"), "porthole.yml:2:12: 'pool_size' must be 1-1000 (got 0)");
  EXPECT_EQ(error_of("inspect_keep: -1\n"),
            "porthole.yml:1:15: 'inspect_keep' must be 0 or more (got -1)");
}

TEST(ConfigFileError, WrongTypeForAString) {
  EXPECT_EQ(error_of("authtoken:\n  a: b\n"),
            "porthole.yml:2:3: 'authtoken' must be a string (got a map)");
}

TEST(ConfigFileError, MissingValuePointsAtTheKey) {
  EXPECT_EQ(error_of("log_level: info\nserver_addr:\nauthtoken: x\n"),
            "porthole.yml:2:1: 'server_addr' must be a string (got nothing)");
}

TEST(ConfigFileError, WrongTypeForABoolean) {
  EXPECT_EQ(error_of("trust_host_root_certs: maybe\n"),
            "porthole.yml:1:24: 'trust_host_root_certs' must be true or false (got 'maybe')");
}

TEST(ConfigFileError, UnknownLogLevel) {
  EXPECT_EQ(error_of("log_level: verbose\n"),
            "porthole.yml:1:12: 'log_level' must be one of trace, debug, info, warn, error (got "
            "'verbose')");
}

TEST(ConfigFileError, BadInspectAddr) {
  EXPECT_EQ(error_of("inspect_addr: off\n"),
            "porthole.yml:1:15: 'inspect_addr' must be host:port or 'disabled': no port in 'off'");
}

TEST(ConfigFileError, BadServerAddrPort) {
  EXPECT_EQ(error_of("server_addr: example.com:99999\n"),
            "porthole.yml:1:14: 'server_addr' must be host[:port]: bad port '99999' (want "
            "1-65535)");
}

TEST(ConfigFileError, BadProxyUrlHidesItsPassword) {
  const std::string error = error_of("http_proxy: socks5://user:secret@proxy:1080\n");
  EXPECT_THAT(error, HasSubstr("porthole.yml:1:13: 'http_proxy' must be a proxy URL"));
  EXPECT_THAT(error, HasSubstr("socks5"));
  EXPECT_THAT(error, ::testing::Not(HasSubstr("secret")));
}

TEST(ConfigFileError, BothAuthtokenSpellings) {
  EXPECT_EQ(error_of("authtoken: a\nauth_token: b\n"),
            "porthole.yml:2:1: 'auth_token' given, but 'authtoken' was already (they are the same "
            "setting; keep one)");
}

TEST(ConfigFileError, KeyGivenTwicePointsAtTheSecond) {
  EXPECT_EQ(error_of("pool_size: 1\nlog: none\npool_size: 2\n"),
            "porthole.yml:3:1: 'pool_size' given twice (first on line 1)");
}

TEST(ConfigFileError, TunnelDefinedTwicePointsAtTheSecond) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto: {http: 1}\n  blog:\n    proto: {http: 2}\n"),
            "porthole.yml:4:3: tunnel 'blog' given twice (first on line 2)");
}

TEST(ConfigFileError, TunnelKeyGivenTwice) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    subdomain: a\n    subdomain: b\n"),
            "porthole.yml:4:5: tunnel 'blog': 'subdomain' given twice (first on line 3)");
}

TEST(ConfigFileError, ProtocolGivenTwice) {
  EXPECT_EQ(error_of("tunnels:\n  blog:\n    proto:\n      http: 1\n      http: 2\n"),
            "porthole.yml:5:7: tunnel 'blog': protocol 'http' given twice (first on line 4)");
}

TEST(ConfigFileError, YamlSyntaxError) {
  EXPECT_EQ(error_of("tunnels:\n  blog: {proto: [1\n"),
            "porthole.yml:3:1: YAML syntax error: end of sequence flow not found");
}

TEST(ConfigFileError, TopLevelThatIsNotAMap) {
  EXPECT_THAT(error_of("- a\n- b\n"), HasSubstr("porthole.yml:1:1: expected a map of settings"));
}

TEST(ConfigFileError, TunnelsThatIsNotAMap) {
  EXPECT_EQ(error_of("tunnels:\n  - blog\n"),
            "porthole.yml:2:3: 'tunnels' must be a map of tunnel names to tunnels (got a list)");
}

TEST(ConfigFileError, SecondYamlDocument) {
  EXPECT_EQ(error_of("log: none\n---\nlog: stderr\n"),
            "porthole.yml:3:1: expected one YAML document, found a second one here");
}

// Found by fuzz/config_fuzz.cpp (fuzz/corpus/config/crash-newline-in-key.yml):
// text quoted from the file could break the message over lines, or carry
// terminal escapes to the screen it is printed on.
TEST(ConfigFileError, ControlCharactersQuotedFromTheFileAreEscaped) {
  EXPECT_EQ(
      error_of("tunnels:\n  \"we\\nb\": {proto: {http: 1}}\n  \"we\\nb\": {proto: {http: 2}}\n"),
      "porthole.yml:3:3: tunnel 'we\\nb' given twice (first on line 2)");
  EXPECT_EQ(error_of("log_level: \"\\e[31mred\\r\\t\\x7f\"\n"),
            "porthole.yml:1:12: 'log_level' must be one of trace, debug, info, warn, error (got "
            "'\\x1b[31mred\\r\\t\\x7f')");
}

// Found by fuzz/config_fuzz.cpp (fuzz/corpus/config/crash-yaml-cpp-loadall-loop*):
// yaml-cpp 0.7's LoadAll() never returns on this, filling memory.
TEST(ConfigFileError, TextThatLoopsYamlCppIsAnError) {
  EXPECT_THAT(error_of(",:"), HasSubstr("porthole.yml:"));
  EXPECT_THAT(error_of("tunnels: {}\n,:"), HasSubstr("porthole.yml:"));
}

TEST(ConfigFileError, EmptySecondYamlDocument) {
  EXPECT_EQ(error_of("log: none\n---\n"),
            "porthole.yml:3:1: expected one YAML document, found a second one here");
}

// ---- reading files ----

TEST(LoadConfigFile, ReadsAFile) {
  testing::temporary_directory dir;
  write_file(dir.path() / "p.yml", ngrok_announcement);
  const config_file cfg = load_config_file(dir.path() / "p.yml");
  EXPECT_EQ(cfg.path, dir.path() / "p.yml");
  EXPECT_EQ(cfg.tunnels.size(), 4u);
}

TEST(LoadConfigFile, EmptyFileHasNoTunnels) {
  testing::temporary_directory dir;
  write_file(dir.path() / "p.yml", "");
  EXPECT_TRUE(load_config_file(dir.path() / "p.yml").tunnels.empty());
}

TEST(LoadConfigFile, ErrorsNameThePathGiven) {
  testing::temporary_directory dir;
  const auto path = dir.path() / "p.yml";
  write_file(path, "tunnels:\n  a:\n    proto: {http: 0}\n");
  try {
    load_config_file(path);
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()),
              path.string() + ":3:19: tunnel 'a': http: bad port '0' (want 1-65535)");
  }
}

TEST(LoadConfigFile, MissingFileIsAnErrorNamingIt) {
  testing::temporary_directory dir;
  const auto path = dir.path() / "absent.yml";
  try {
    load_config_file(path);
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ": cannot open: No such file or directory");
  }
}

TEST(LoadConfigFile, DirectoryIsAnError) {
  testing::temporary_directory dir;
  EXPECT_THROW(load_config_file(dir.path()), config_error);
}

// ---- choosing tunnels ----

TEST(SelectTunnels, ReturnsTheSpecsInTheOrderAsked) {
  const config_file cfg = parse(ngrok_announcement);
  const auto specs = select_tunnels(cfg, {"ssh", "blog"});
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].name, "ssh");
  EXPECT_EQ(specs[1].name, "blog");
  EXPECT_EQ(specs[1].protocol, "http");
  EXPECT_EQ(specs[2].name, "blog");
  EXPECT_EQ(specs[2].protocol, "https");
}

TEST(SelectTunnels, UnknownNameListsTheDefinedOnes) {
  const config_file cfg = parse(ngrok_announcement);
  EXPECT_EQ(select_error(cfg, {"blog", "apii"}),
            "porthole.yml: no tunnel named 'apii' (defined: blog, api, personal, ssh; did you "
            "mean 'api'?)");
}

TEST(SelectTunnels, UnknownNameInAFileWithoutTunnels) {
  EXPECT_EQ(select_error(parse(""), {"blog"}),
            "porthole.yml: no tunnel named 'blog' (the file defines none)");
}

TEST(SelectTunnels, ControlCharactersInANameAreEscaped) {
  EXPECT_EQ(select_error(parse(""), {"a\nb\x1b"}),
            "porthole.yml: no tunnel named 'a\\nb\\x1b' (the file defines none)");
}

TEST(SelectTunnels, NameAskedForTwice) {
  const config_file cfg = parse(ngrok_announcement);
  EXPECT_EQ(select_error(cfg, {"blog", "ssh", "blog"}),
            "porthole.yml: tunnel 'blog' asked for twice");
}

}  // namespace
}  // namespace porthole::client

namespace porthole::client {
namespace {

TEST(ConfigFile, UpstreamSaysHowRequestsReachTheLocalService) {
  const config_file cfg =
      parse("tunnels:\n  api:\n    upstream: http2\n    proto: {https: 50051}\n"
            "  web:\n    proto: {http: 80}\n");
  EXPECT_EQ(cfg.find("api")->specs[0].upstream, "http2");
  EXPECT_EQ(cfg.find("web")->specs[0].upstream, "http1");  // the default
}

TEST(ConfigFileError, UpstreamIsHttp1OrHttp2) {
  EXPECT_EQ(error_of("tunnels:\n  api:\n    upstream: grpc\n    proto: {http: 50051}\n"),
            "porthole.yml:3:15: tunnel 'api': bad upstream 'grpc' (expected one of: http1, "
            "http2)");
}

TEST(ConfigFileError, UpstreamOnATcpOnlyTunnel) {
  EXPECT_EQ(error_of("tunnels:\n  db:\n    upstream: http2\n    proto: {tcp: 5432}\n"),
            "porthole.yml:3:5: tunnel 'db': 'upstream' is only for http and https, and 'proto' "
            "has neither");
}

}  // namespace
}  // namespace porthole::client
