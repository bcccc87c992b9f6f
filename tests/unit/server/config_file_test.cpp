#include "server/config_file.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/yaml_file.h"

namespace {

namespace fs = std::filesystem;
using porthole::server::apply_config_text;

// A small stand-in for portholed's command line.
struct server_flags {
  CLI::App app{"test"};
  std::string domain = "localhost";
  int max_pool_size = 10;
  bool dev = false;
  std::vector<std::string> allowed;
  std::string cert;
  std::string log = "stderr";
  porthole::server::config_options config;

  server_flags() {
    app.set_version_flag("--version", "1");
    app.add_option("--domain", domain, "")->capture_default_str();
    app.add_option("--max-pool-size", max_pool_size, "")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    app.add_flag("--dev", dev, "");
    app.add_option("--allow-hostname", allowed, "")->check([](const std::string& name) {
      return name.find('_') == std::string::npos ? std::string() : "no '_' in " + name;
    });
    app.add_option("--tls-cert", cert, "")->check(CLI::ExistingFile);
    app.add_option("--log", log, "")->capture_default_str()->type_name("stdout|stderr|none|FILE");
    app.add_subcommand("token", "")->add_option("--name");
    porthole::server::add_config_options(app, config);
  }

  void parse(std::vector<std::string> args) {
    std::reverse(args.begin(), args.end());
    app.parse(args);
  }

  // The message of the error the text gives, or "" if none.
  std::string error(const std::string& yaml) {
    try {
      apply_config_text(app, yaml, "/etc/porthole/portholed.yml");
    } catch (const porthole::config::config_error& e) {
      return e.what();
    }
    return {};
  }
};

TEST(ServerConfigFile, KeysSetTheOptionsTheyNameThroughTheirConversion) {
  server_flags f;
  f.parse({});
  EXPECT_EQ(f.error("domain: tunnel.example.com\nmax-pool-size: 64\ndev: true\n"
                    "allow-hostname: [a.example.org, \"*.example.net\"]\n"),
            "");
  EXPECT_EQ(f.domain, "tunnel.example.com");
  EXPECT_EQ(f.max_pool_size, 64);
  EXPECT_TRUE(f.dev);
  EXPECT_EQ(f.allowed, (std::vector<std::string>{"a.example.org", "*.example.net"}));
}

TEST(ServerConfigFile, TheCommandLineWinsOverTheFile) {
  server_flags f;
  f.parse({"--domain", "cli.example.com"});
  EXPECT_EQ(f.error("domain: file.example.com\nmax-pool-size: 7\n"), "");
  EXPECT_EQ(f.domain, "cli.example.com");
  EXPECT_EQ(f.max_pool_size, 7);
}

TEST(ServerConfigFile, AKeyTheCommandLineOverridesMustStillHaveTheRightShape) {
  server_flags f;
  f.parse({"--dev"});
  EXPECT_EQ(f.error("dev: maybe\n"),
            "/etc/porthole/portholed.yml:1:6: dev: expected true or false (got 'maybe')");
}

TEST(ServerConfigFile, AnEmptyFileOrOneOfCommentsChangesNothing) {
  server_flags f;
  f.parse({});
  EXPECT_EQ(f.error(""), "");
  EXPECT_EQ(f.error("# nothing yet\n"), "");
  EXPECT_EQ(f.domain, "localhost");
}

TEST(ServerConfigFile, AValueTheValidatorRejectsIsNamedAtItsPlace) {
  server_flags f;
  f.parse({});
  EXPECT_EQ(f.error("domain: x\nmax-pool-size: 5000\n"),
            "/etc/porthole/portholed.yml:2:16: max-pool-size: Value 5000 not in range 1 to 1000");
  EXPECT_EQ(f.error("allow-hostname:\n  - ok.example.org\n  - bad_name\n"),
            "/etc/porthole/portholed.yml:3:5: allow-hostname: no '_' in bad_name");
}

TEST(ServerConfigFile, AnUnknownKeySuggestsTheNearestKnownOne) {
  server_flags f;
  f.parse({});
  const std::string message = f.error("\ndomian: x\n");
  EXPECT_EQ(message.rfind("/etc/porthole/portholed.yml:2:1: unknown key 'domian'; did you mean "
                          "'domain'?",
                          0),
            0u)
      << message;
}

TEST(ServerConfigFile, SubcommandOptionsHelpVersionAndConfigAreNotKeys) {
  for (const std::string key : {"name", "help", "version", "config", "print-config", "token"}) {
    server_flags f;
    f.parse({});
    EXPECT_NE(f.error(key + ": x\n").find("unknown key '" + key + "'"), std::string::npos) << key;
  }
}

TEST(ServerConfigFile, AKeyGivenTwiceIsAnError) {
  server_flags f;
  f.parse({});
  EXPECT_EQ(f.error("domain: a\ndomain: b\n"),
            "/etc/porthole/portholed.yml:2:1: 'domain' given twice (first on line 1)");
}

TEST(ServerConfigFile, AValueOfTheWrongShapeIsAnError) {
  server_flags f;
  f.parse({});
  EXPECT_EQ(f.error("domain: [a, b]\n"),
            "/etc/porthole/portholed.yml:1:9: domain: expected one value, not a list (only "
            "repeatable flags take lists)");
  EXPECT_EQ(f.error("domain: {a: b}\n"),
            "/etc/porthole/portholed.yml:1:9: domain: expected a value (got a map)");
  EXPECT_EQ(f.error("dev: maybe\n"),
            "/etc/porthole/portholed.yml:1:6: dev: expected true or false (got 'maybe')");
  EXPECT_EQ(f.error("max-pool-size: many\n"),
            "/etc/porthole/portholed.yml:1:16: max-pool-size: Value many not in range 1 to 1000");
}

TEST(ServerConfigFile, TheTopLevelMustBeAMap) {
  server_flags f;
  f.parse({});
  EXPECT_EQ(f.error("- domain\n"),
            "/etc/porthole/portholed.yml:1:1: expected a map of settings, as in 'domain: "
            "tunnel.example.com' (got a list)");
}

TEST(ServerConfigFile, ASyntaxErrorIsNamedAtItsPlace) {
  server_flags f;
  f.parse({});
  const std::string message = f.error("domain: [a\n");
  EXPECT_EQ(message.rfind("/etc/porthole/portholed.yml:", 0), 0u) << message;
  EXPECT_NE(message.find("YAML syntax error"), std::string::npos) << message;
}

TEST(ServerConfigFile, InputThatLoopsYamlCppLoadAllIsASyntaxErrorNotAHang) {
  server_flags f;
  f.parse({});
  EXPECT_NE(f.error(",:"), "");
}

TEST(ServerConfigFile, RelativePathsAreRelativeToTheFilesDirectory) {
  const fs::path dir = fs::temp_directory_path() / "porthole-server-config-test";
  fs::create_directories(dir / "tls");
  std::ofstream(dir / "tls" / "cert.pem") << "x";
  server_flags f;
  f.parse({});
  ASSERT_EQ(f.error("log: stdout\n"), "");
  EXPECT_EQ(f.log, "stdout") << "a word the type name lists is no path";
  server_flags g;
  g.parse({});
  try {
    apply_config_text(g.app, "tls-cert: tls/cert.pem\nlog: server.log\n", dir / "portholed.yml");
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  EXPECT_EQ(g.cert, (dir / "tls" / "cert.pem").string());
  EXPECT_EQ(g.log, (dir / "server.log").string());
  fs::remove_all(dir);
}

TEST(ServerConfigFile, AMissingFileIsNamed) {
  server_flags f;
  f.parse({});
  try {
    porthole::server::apply_config_file(f.app, "/nonexistent/portholed.yml");
    FAIL() << "no error";
  } catch (const porthole::config::config_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "/nonexistent/portholed.yml: cannot open: No such file or directory");
  }
}

TEST(ServerConfigFile, TheEffectiveConfigurationListsEveryKeyAndReadsBack) {
  server_flags f;
  f.parse({"--max-pool-size", "9"});
  ASSERT_EQ(f.error("allow-hostname: \"*.example.net\"\ndev: true\n"), "");
  const std::string printed = porthole::server::effective_config(f.app);
  EXPECT_EQ(printed,
            "domain: localhost\nmax-pool-size: 9\ndev: true\nallow-hostname: [\"*.example.net\"]\n"
            "tls-cert: ~\nlog: stderr\n");
  server_flags g;
  g.parse({});
  EXPECT_EQ(g.error(printed), "");
  EXPECT_EQ(porthole::server::effective_config(g.app), printed);
}

}  // namespace
