// tcpms::config: defaults, TOML file, flags, errors with positions, reload, example output.
#include "config/settings.h"
#include "config/table_array.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tcpms::config {
namespace {

using ::testing::HasSubstr;

struct Options {
  std::string listen = "127.0.0.1:7000";
  unsigned threads = 0;
  std::string log_level = "info";
  uint32_t max_packet_size = 1 << 20;
  uint16_t max_inflight = 20;
  bool deny_anonymous = false;
  bool admin_enabled = true;
  double ratio = 0.5;
  int64_t offset = -3;
  std::vector<std::string> users;
  uint64_t high_water = 1 << 20;
  uint64_t hard_limit = 64 << 20;
};

struct Fixture : ::testing::Test {
  Options o;
  Settings s{"tcpms-test"};
  std::vector<std::string> applied_levels;

  void SetUp() override {
    s.add("listen", o.listen, "HOST:PORT to accept clients on");
    s.add("threads", o.threads, "Event loops (0: one per CPU)").range(0u, 1024u);
    s.add("log.level", o.log_level, "Least severe messages logged")
        .one_of({"debug", "info", "warn"})
        .live([this](const std::string& l) { applied_levels.push_back(l); });
    s.add("mqtt.max_packet_size", o.max_packet_size, "Largest MQTT packet")
        .range(16u, 268435460u)
        .alias("--max-packet-size");
    s.add("mqtt.max_inflight", o.max_inflight, "QoS 1/2 messages in flight").live();
    s.add("mqtt.deny_anonymous", o.deny_anonymous, "Refuse CONNECT without a user name");
    s.add("admin.enabled", o.admin_enabled, "Start the admin API").alias("!--no-admin");
    s.add("tuning.ratio", o.ratio, "A fraction").range(0.0, 1.0);
    s.add("tuning.offset", o.offset, "A signed number");
    s.add("mqtt.auth_users", o.users, "NAME:PASSWORD").check([](const auto& v) -> std::string {
      for (const auto& u : v) {
        if (u.find(':') == std::string::npos) return "wants NAME:PASSWORD, got '" + u + "'";
      }
      return {};
    });
    s.add("output.high_water_bytes", o.high_water, "High water").live();
    s.add("output.hard_limit_bytes", o.hard_limit, "Hard limit").live();
    s.add_rule([this] {
      return o.hard_limit < o.high_water ? "output.hard_limit_bytes must be at least "
                                           "output.high_water_bytes"
                                         : "";
    });
  }

  std::string temp_file(const std::string& text) {
    char path[] = "/tmp/tcpms_config_test_XXXXXX";
    int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    ::close(fd);
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& f : files_) std::remove(f.c_str());
  }

  // Runs parse_command_line; returns the exit code (-1: go on) and fills out/err.
  int run(std::vector<std::string> args) {
    args.insert(args.begin(), "tcpms-test");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    CLI::App app{"test"};
    std::ostringstream out_stream, err_stream;
    int rc = s.parse_command_line(app, static_cast<int>(argv.size()), argv.data(), out_stream,
                                  err_stream);
    out = out_stream.str();
    err = err_stream.str();
    return rc;
  }

  std::string out, err;
  std::vector<std::string> files_;
};

TEST_F(Fixture, DefaultsStayWithoutFileOrFlags) {
  EXPECT_EQ(run({}), -1) << err;
  EXPECT_EQ(o.listen, "127.0.0.1:7000");
  EXPECT_EQ(o.max_packet_size, 1u << 20);
  for (const auto& setting : s.all()) EXPECT_EQ(setting->source(), Source::kDefault);
}

TEST_F(Fixture, FileSetsValuesAndRemembersTheLine) {
  auto errors = s.load_text("listen = \"0.0.0.0:1\"\n[mqtt]\nmax_packet_size = 4096\n"
                            "auth_users = [\"a:b\", \"c:d\"]\ndeny_anonymous = true\n"
                            "[tuning]\nratio = 1\noffset = -7\n",
                            "t.toml");
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  EXPECT_EQ(o.listen, "0.0.0.0:1");
  EXPECT_EQ(o.max_packet_size, 4096u);
  EXPECT_EQ(o.users, (std::vector<std::string>{"a:b", "c:d"}));
  EXPECT_TRUE(o.deny_anonymous);
  EXPECT_EQ(o.ratio, 1.0);
  EXPECT_EQ(o.offset, -7);
  EXPECT_EQ(s.find("mqtt.max_packet_size")->source(), Source::kFile);
  EXPECT_EQ(s.find("mqtt.max_packet_size")->origin(), "t.toml:3");
  EXPECT_EQ(s.find("threads")->source(), Source::kDefault);
}

TEST_F(Fixture, DottedKeysWorkLikeTables) {
  auto errors = s.load_text("mqtt.max_inflight = 7\nlog.level = \"warn\"\n", "t.toml");
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  EXPECT_EQ(o.max_inflight, 7);
  EXPECT_EQ(o.log_level, "warn");
  EXPECT_TRUE(applied_levels.empty()) << "hooks run on reload only";
}

TEST_F(Fixture, FlagsOverrideTheFile) {
  std::string path = temp_file("[mqtt]\nmax_packet_size = 4096\nmax_inflight = 5\n");
  ASSERT_EQ(run({"--config", path, "--mqtt-max-packet-size", "2048", "--threads=3"}), -1) << err;
  EXPECT_EQ(o.max_packet_size, 2048u);
  EXPECT_EQ(o.max_inflight, 5);
  EXPECT_EQ(o.threads, 3u);
  EXPECT_EQ(s.find("mqtt.max_packet_size")->source(), Source::kFlag);
  EXPECT_EQ(s.find("mqtt.max_inflight")->source(), Source::kFile);
}

TEST_F(Fixture, AliasesBooleansAndLists) {
  ASSERT_EQ(run({"--max-packet-size", "100", "--mqtt-deny-anonymous", "--no-admin",
                 "--mqtt-auth-users", "a:1", "b:2"}),
            -1)
      << err;
  EXPECT_EQ(o.max_packet_size, 100u);
  EXPECT_TRUE(o.deny_anonymous);
  EXPECT_FALSE(o.admin_enabled);
  EXPECT_EQ(o.users, (std::vector<std::string>{"a:1", "b:2"}));
}

TEST_F(Fixture, BadFlagValueIsAUsageError) {
  EXPECT_EQ(run({"--mqtt-max-packet-size", "5"}), kExitUsage);
  EXPECT_THAT(err, HasSubstr("mqtt.max_packet_size: --mqtt-max-packet-size: must be in "
                             "16..268435460, got 5"));
  EXPECT_EQ(run({"--threads", "lots"}), kExitUsage);
  EXPECT_THAT(err, HasSubstr("expected an integer, got 'lots'"));
}

TEST_F(Fixture, UnknownKeyNamesLineAndSuggests) {
  auto errors = s.load_text("\n[mqtt]\nmax_paket_size = 10\n", "bad.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].to_string(),
            "bad.toml:3:1: mqtt.max_paket_size: unknown setting (did you mean "
            "mqtt.max_packet_size?)");
  errors = s.load_text("max_inflight = 3\n", "bad.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("did you mean mqtt.max_inflight?"));
  errors = s.load_text("[nothing]\nx = 1\n", "bad.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].setting, "nothing");
  EXPECT_THAT(errors[0].message, HasSubstr("unknown table"));
  errors = s.load_text("completely_different = 1\n", "bad.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "unknown setting");
}

TEST_F(Fixture, WrongTypeAndRangeNameFileLineAndSetting) {
  auto errors = s.load_text("threads = \"four\"\n[mqtt]\nmax_packet_size = 3\n"
                            "max_inflight = 70000\n[log]\nlevel = \"loud\"\n",
                            "bad.toml");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].to_string(), "bad.toml:1:11: threads: expected an integer, got a string");
  EXPECT_EQ(errors[1].to_string(),
            "bad.toml:3:19: mqtt.max_packet_size: must be in 16..268435460, got 3");
  EXPECT_EQ(errors[2].setting, "mqtt.max_inflight");
  EXPECT_THAT(errors[2].message, HasSubstr("out of range"));
  EXPECT_EQ(errors[3].to_string(),
            "bad.toml:6:9: log.level: must be one of \"debug\", \"info\", \"warn\", got \"loud\"");
  EXPECT_EQ(o.threads, 0u) << "a bad file changes nothing";
  EXPECT_EQ(o.max_packet_size, 1u << 20);
}

TEST_F(Fixture, NegativeForUnsignedAndListItems) {
  auto errors = s.load_text("threads = -1\n[mqtt]\nauth_users = [\"a:b\", 3]\n", "bad.toml");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_THAT(errors[0].message, HasSubstr("must not be negative"));
  EXPECT_THAT(errors[1].message, HasSubstr("item 2: expected a string, got an integer"));
  errors = s.load_text("[mqtt]\nauth_users = [\"nopassword\"]\n", "bad.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("wants NAME:PASSWORD"));
}

TEST_F(Fixture, SyntaxErrorNamesFileAndLine) {
  auto errors = s.load_text("listen = \"a\"\nthreads = = 3\n", "syntax.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].file, "syntax.toml");
  EXPECT_EQ(errors[0].line, 2u);
  EXPECT_TRUE(errors[0].setting.empty());
}

TEST_F(Fixture, MissingFileIsAnError) {
  EXPECT_EQ(run({"--config", "/nonexistent/tcpms.toml"}), kExitUsage);
  EXPECT_THAT(err, HasSubstr("/nonexistent/tcpms.toml: cannot read the config file: No such file"));
}

TEST_F(Fixture, RulesAcrossSettings) {
  auto errors = s.load_text("[output]\nhigh_water_bytes = 100\nhard_limit_bytes = 10\n", "r.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].to_string(), HasSubstr("must be at least"));
}

TEST_F(Fixture, CheckConfigPrintsSourcesAndExits) {
  std::string path = temp_file("[mqtt]\nmax_inflight = 9\n");
  EXPECT_EQ(run({"--config", path, "--check-config", "--threads", "2"}), 0) << err;
  EXPECT_THAT(out, HasSubstr("threads = 2"));
  EXPECT_THAT(out, HasSubstr("# flag --threads"));
  EXPECT_THAT(out, HasSubstr("mqtt.max_inflight = 9"));
  EXPECT_THAT(out, HasSubstr("# file " + path + ":2"));
  EXPECT_THAT(out, HasSubstr("listen = \"127.0.0.1:7000\""));
  EXPECT_THAT(out, HasSubstr("# default"));
  // The output is itself a valid config with the same values.
  Options again;
  Settings s2("again");
  s2.add("threads", again.threads, "");
  s2.add("mqtt.max_inflight", again.max_inflight, "");
  std::string relevant;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("threads") || line.starts_with("mqtt.max_inflight")) relevant += line + "\n";
  }
  ASSERT_TRUE(s2.load_text(relevant, "effective").empty());
  EXPECT_EQ(again.threads, 2u);
  EXPECT_EQ(again.max_inflight, 9);

  std::string bad = temp_file("threads = 5000\n");
  EXPECT_EQ(run({"--config", bad, "--check-config"}), kExitUsage);
  EXPECT_THAT(err, HasSubstr(bad + ":1:11: threads: must be in 0..1024, got 5000"));
}

TEST_F(Fixture, HelpListsEverySettingFlag) {
  EXPECT_EQ(run({"--help"}), 0);
  for (const auto& setting : s.all()) EXPECT_THAT(out, HasSubstr(setting->flag())) << setting->name();
  EXPECT_THAT(out, HasSubstr("--config"));
  EXPECT_THAT(out, HasSubstr("[mqtt.max_inflight; live]"));
}

TEST_F(Fixture, ReloadAppliesLiveSettingsAndReportsTheRest) {
  std::string path = temp_file("[mqtt]\nmax_inflight = 5\n");
  ASSERT_EQ(run({"--config", path, "--threads", "2"}), -1) << err;
  std::ofstream(path) << "threads = 8\nlisten = \"0.0.0.0:9\"\n[mqtt]\nmax_inflight = 50\n"
                         "[log]\nlevel = \"debug\"\n";
  ReloadResult r = s.reload();
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  ASSERT_EQ(r.applied.size(), 2u);
  EXPECT_EQ(r.applied[0].to_string(), "log.level: \"info\" -> \"debug\"");
  EXPECT_EQ(r.applied[1].to_string(), "mqtt.max_inflight: 5 -> 50");
  ASSERT_EQ(r.needs_restart.size(), 1u) << "threads comes from a flag, which still wins";
  EXPECT_EQ(r.needs_restart[0].setting, "listen");
  EXPECT_EQ(o.max_inflight, 50);
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_EQ(applied_levels, std::vector<std::string>{"debug"});
  EXPECT_EQ(o.listen, "127.0.0.1:7000") << "a restart setting keeps its value";
  EXPECT_EQ(o.threads, 2u);
  auto lines = r.log_lines();
  EXPECT_THAT(lines, ::testing::Contains(
                         "could not change listen live (\"127.0.0.1:7000\" -> \"0.0.0.0:9\"): "
                         "restart to apply"));
  // Removing a line from the file returns the setting to its default.
  std::ofstream(path) << "\n";
  r = s.reload();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(o.max_inflight, 20);
  EXPECT_EQ(o.log_level, "info");
  EXPECT_EQ(s.find("mqtt.max_inflight")->source(), Source::kDefault);
}

TEST_F(Fixture, ReloadWithErrorsChangesNothing) {
  ASSERT_TRUE(s.load_text("[mqtt]\nmax_inflight = 5\n", "a.toml").empty());
  ReloadResult r = s.reload_text("[mqtt]\nmax_inflight = 6\nmax_packet_size = 1\n", "a.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(o.max_inflight, 5);
  EXPECT_THAT(r.log_lines()[0], HasSubstr("reload failed, nothing changed: a.toml:3:19"));
  // A rule broken by live values rolls them back before any hook runs.
  r = s.reload_text("[mqtt]\nmax_inflight = 6\n[output]\nhard_limit_bytes = 1\n", "a.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(o.max_inflight, 5);
  EXPECT_EQ(o.hard_limit, 64u << 20);
  r = s.reload();
  EXPECT_FALSE(r.ok()) << "no config file was given";
}

TEST_F(Fixture, ExampleDocumentsEverySettingAndLoadsAsDefaults) {
  std::string example = s.example();
  for (const auto& setting : s.all()) {
    EXPECT_THAT(example, HasSubstr("flag " + setting->flag())) << setting->name();
  }
  EXPECT_THAT(example, HasSubstr("\n[mqtt]\n"));
  EXPECT_THAT(example, HasSubstr("#max_packet_size = 1048576\n"));
  EXPECT_THAT(example, HasSubstr("integer, 16..268435460; flag --mqtt-max-packet-size; needs a restart"));
  EXPECT_THAT(example, HasSubstr("; live\n"));
  EXPECT_LT(example.find("#listen ="), example.find("[mqtt]")) << "top-level keys first";
  ASSERT_TRUE(s.load_text(example, "example").empty());
  // Uncommented, every line is a valid setting at its default.
  std::string uncommented;
  std::istringstream lines(example);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ') line.erase(0, 1);
    uncommented += line + "\n";
  }
  auto errors = s.load_text(uncommented, "uncommented");
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  for (const auto& setting : s.all()) {
    EXPECT_EQ(setting->source(), Source::kFile) << setting->name();
    EXPECT_EQ(setting->value_text(), setting->default_text());
  }
}

TEST_F(Fixture, PrintExampleConfigExits) {
  EXPECT_EQ(run({"--print-example-config"}), 0);
  EXPECT_EQ(out, s.example());
}

TEST(Settings, DeclarationErrorsThrow) {
  Settings s("x");
  int a = 0, b = 0, c = 0;
  s.add("a.b", a, "");
  EXPECT_THROW(s.add("a.b", b, ""), std::logic_error);
  EXPECT_THROW(s.add("a", b, ""), std::logic_error);
  EXPECT_THROW(s.add("Bad-Name", c, ""), std::logic_error);
}

TEST(Settings, TomlLiterals) {
  EXPECT_EQ(detail::to_toml(std::string("a\"b\\c\n")), "\"a\\\"b\\\\c\\n\"");
  EXPECT_EQ(detail::to_toml(2.0), "2.0");
  EXPECT_EQ(detail::to_toml(std::vector<std::string>{"x", "y"}), "[\"x\", \"y\"]");
}

}  // namespace
}  // namespace tcpms::config

// --- arrays of tables ([[listeners]]) ---------------------------------------------------------

namespace tcpms::config {
namespace {

struct Item {
  std::string bind;
  bool flag = false;
  int64_t limit = 0;
};

void declare_item(Settings& s, Item& i) {
  s.add("bind", i.bind, "where");
  s.add("tls.flag", i.flag, "a dotted key");
  s.add("limit", i.limit, "a number").range(int64_t{0}, int64_t{10});
  s.add_rule([&i] {
    if (i.bind.empty()) return "needs bind";  // a rule: a check would not see a missing key
    return i.flag && i.limit == 0 ? "tls.flag needs limit" : "";
  });
}

struct ArrayFixture {
  std::string top;
  std::vector<Item> items;
  Settings settings{"t"};
  ArrayFixture() {
    settings.add("top", top, "a top-level key");
    settings.add_table_array<Item>("items", items, "More items", declare_item);
  }
};

TEST(TableArray, LoadsEveryElementWithDottedKeys) {
  ArrayFixture f;
  auto errors = f.settings.load_text(
      "top = \"x\"\n[[items]]\nbind = \"a\"\n[[items]]\nbind = \"b\"\ntls.flag = true\nlimit = 3\n", "f.toml");
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  ASSERT_EQ(f.items.size(), 2u);
  EXPECT_EQ(f.items[0].bind, "a");
  EXPECT_FALSE(f.items[0].flag);
  EXPECT_TRUE(f.items[1].flag);
  EXPECT_EQ(f.items[1].limit, 3);
  EXPECT_NE(f.settings.effective().find(
                "items = [{bind = \"a\"}, {bind = \"b\", tls.flag = true, limit = 3}]"),
            std::string::npos)
      << f.settings.effective();
}

TEST(TableArray, ErrorsNameTheElementAndItsPosition) {
  ArrayFixture f;
  auto errors = f.settings.load_text(
      "[[items]]\nbind = \"a\"\nlimit = 11\n[[items]]\nbnd = \"b\"\n[[items]]\nbind = \"c\"\ntls.flag = true\n",
      "f.toml");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].to_string(), "f.toml:3:9: items[0].limit: must be in 0..10, got 11");
  EXPECT_EQ(errors[1].to_string(), "f.toml:5:1: items[1].bnd: unknown setting (did you mean bind?)");
  EXPECT_EQ(errors[2].to_string(), "f.toml:6:1: items[2]: tls.flag needs limit");
  EXPECT_TRUE(f.items.empty());  // nothing applied
  ArrayFixture g;
  errors = g.settings.load_text("[[items]]\nlimit = 1\n", "g.toml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].to_string(), "g.toml:1:1: items[0]: needs bind");
}

TEST(TableArray, ExampleListsEveryKeyAndReloadNeedsARestart) {
  ArrayFixture f;
  std::string example = f.settings.example();
  EXPECT_NE(example.find("#[[items]]\n"), std::string::npos) << example;
  EXPECT_NE(example.find("#tls.flag = false\n"), std::string::npos) << example;
  EXPECT_NE(example.find("#limit = 0\n"), std::string::npos);
  EXPECT_LT(example.find("#top = "), example.find("#[[items]]"));  // plain keys first
  ASSERT_TRUE(f.settings.load_text("[[items]]\nbind = \"a\"\n", "f.toml").empty());
  auto r = f.settings.reload_text("[[items]]\nbind = \"b\"\n", "f.toml");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.needs_restart.size(), 1u);
  EXPECT_EQ(r.needs_restart[0].setting, "items");
  EXPECT_EQ(f.items[0].bind, "a");  // unchanged until a restart
}

}  // namespace
}  // namespace tcpms::config
