// The committed tcpms.toml is exactly what the server's declarations generate, so it cannot
// drift from them. To refresh it after changing a setting:
//   TCPMS_UPDATE_EXAMPLE_CONFIG=1 build/<dir>/bin/config_test --gtest_filter='ExampleConfig.*'
// (or `tcpms-server --print-example-config > tcpms.toml` once the server declares them).
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>

#include <gtest/gtest.h>

#include "config/settings.h"
#include "server_settings.h"

#ifndef TCPMS_EXAMPLE_CONFIG
#error "TCPMS_EXAMPLE_CONFIG (path of the committed tcpms.toml) must be defined"
#endif

namespace tcpms::config {
namespace {

TEST(ExampleConfig, CommittedFileMatchesTheDeclarations) {
  app::ServerOptions opt;
  Settings settings("tcpms-server");
  app::declare_settings(settings, opt);
  std::string generated = settings.example();
  if (const char* update = std::getenv("TCPMS_UPDATE_EXAMPLE_CONFIG"); update && *update == '1') {
    std::ofstream(TCPMS_EXAMPLE_CONFIG) << generated;
  }
  std::string committed, error;
  ASSERT_TRUE(read_file(TCPMS_EXAMPLE_CONFIG, committed, error)) << error;
  EXPECT_EQ(committed, generated)
      << TCPMS_EXAMPLE_CONFIG " is stale: regenerate it (see the top of this test)";
  // And it loads: every setting at its default.
  EXPECT_TRUE(settings.load_text(committed, TCPMS_EXAMPLE_CONFIG).empty());
}

// Today's flag spellings keep working as aliases, so scripts and tests need no change when the
// server moves to these declarations.
TEST(ExampleConfig, OldFlagSpellingsStillParse) {
  app::ServerOptions opt;
  Settings settings("tcpms-server");
  app::declare_settings(settings, opt);
  const char* argv[] = {"tcpms-server", "--protocol", "echo", "--listen", "127.0.0.1:0",
                        "--admin-listen", "127.0.0.1:0", "--admin-token", "T", "--no-admin",
                        "--max-packet-size", "4096", "--idle-timeout", "3", "--log-level",
                        "warn", "--output-high-water", "1024", "--output-hard-limit", "2048",
                        "--auth-user", "a:b", "--auth-user", "c:d", "--deny-anonymous"};
  CLI::App app{"tcpms-server"};
  std::ostringstream out, err;
  ASSERT_EQ(settings.parse_command_line(app, std::size(argv), argv, out, err), -1) << err.str();
  EXPECT_EQ(opt.protocol, "echo");
  EXPECT_TRUE(opt.no_admin);
  EXPECT_EQ(opt.admin_token, "T");
  EXPECT_EQ(opt.mqtt.max_packet_size, 4096u);
  EXPECT_EQ(opt.idle_timeout_s, 3u);
  EXPECT_EQ(opt.log_level, "warn");
  EXPECT_EQ(opt.output_hard_limit, 2048u);
  EXPECT_EQ(opt.mqtt_auth_users, (std::vector<std::string>{"a:b", "c:d"}));
  EXPECT_TRUE(opt.mqtt_deny_anonymous);
}

}  // namespace
}  // namespace tcpms::config
