#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "doctor/apply.h"
#include "doctor/report.h"
#include "fake_host.h"

namespace tcpms::doctor {
namespace {

using testing::FakeHost;
using testing::million;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Apply, WritesSysctlFixesAndReportsTheRest) {
  FakeHost host;
  host.sysctl("net.core.somaxconn", "4096");
  host.sysctl("net.ipv4.ip_local_port_range", "32768 60999");
  host.limits() = {20000, 20000, false};
  auto findings = run_checks(host.view(), million(Role::both));
  ApplyOptions options;
  options.persist_path = host.root() / "99-tcpms.conf";
  options.origin = "tcpms-doctor --connections 1000000 --role both";
  ApplyReport report = apply(host.view(), findings, options);

  ASSERT_EQ(report.sysctls.size(), 2U);
  for (const auto& c : report.sysctls) EXPECT_TRUE(c.error.empty()) << c.key << ": " << c.error;
  EXPECT_EQ(host.view().sysctl_value("net.core.somaxconn"), 65535U);
  EXPECT_EQ(*host.view().sysctl_values("net.ipv4.ip_local_port_range"),
            (std::vector<std::uint64_t>{10240, 65535}));
  // RLIMIT_NOFILE has no sysctl; the port range is widened, the addresses stay with the user.
  ASSERT_EQ(report.not_changed.size(), 1U);
  EXPECT_EQ(report.not_changed[0].rfind("RLIMIT_NOFILE: ", 0), 0U);
  EXPECT_FALSE(report.all_applied());

  std::string dropin = slurp(*options.persist_path);
  EXPECT_NE(dropin.find("# tcpms-doctor --connections 1000000 --role both\n"), std::string::npos);
  EXPECT_NE(dropin.find("\nnet.core.somaxconn = 65535\n"), std::string::npos) << dropin;
  EXPECT_NE(dropin.find("\nnet.ipv4.ip_local_port_range = 10240 65535\n"), std::string::npos);
  EXPECT_EQ(dropin.find("fs.file-max"), std::string::npos);  // OK checks stay out
  EXPECT_FALSE(std::filesystem::exists(host.root() / "99-tcpms.conf.tmp"));

  // Run again: the written values now pass.
  auto after = run_checks(host.view(), million(Role::both));
  EXPECT_EQ(testing::find(after, "net.core.somaxconn")->severity, Severity::ok);
}

TEST(Apply, ReportsWriteAndPersistErrors) {
  FakeHost host;
  std::vector<Finding> findings(1);
  findings[0] = {"net.core.gone", "1", ">= 2", Severity::warn, "sysctl -w net.core.gone=2",
                 "net.core.gone", "2", {1}};
  ApplyOptions options;
  options.persist_path = host.root() / "no-such-dir" / "99-tcpms.conf";
  ApplyReport report = apply(host.view(), findings, options);
  ASSERT_EQ(report.sysctls.size(), 1U);
  EXPECT_FALSE(report.sysctls[0].error.empty());
  EXPECT_FALSE(report.persist_error.empty());
}

TEST(Apply, NothingToDoOnAHealthyHost) {
  FakeHost host;
  ApplyReport report = apply(host.view(), run_checks(host.view(), million()), {});
  EXPECT_TRUE(report.sysctls.empty());
  EXPECT_TRUE(report.all_applied());
}

// 1M server connections in this container: low somaxconn, RLIMIT_NOFILE 20000 hard.
Report container_report() {
  FakeHost host;
  host.sysctl("net.core.somaxconn", "4096");
  host.limits() = {20000, 20000, false};
  Report r;
  r.target = million();
  r.limits = host.limits();
  r.findings = run_checks(host.view(), r.target);
  return r;
}

TEST(Report, JsonCarriesFindingsAndSummary) {
  Report r = container_report();
  auto j = to_json(r);
  EXPECT_EQ(j["connections"], 1000000);
  EXPECT_EQ(j["role"], "server");
  EXPECT_EQ(j["worst"], "FAIL");
  EXPECT_EQ(j["exit_code"], 2);
  EXPECT_EQ(j["processes_needed"], 51);
  EXPECT_EQ(j["limits"]["nofile_hard"], 20000);
  EXPECT_FALSE(j["limits"]["can_raise_hard"]);
  EXPECT_TRUE(j["measurement"].is_null());
  EXPECT_TRUE(j["apply"].is_null());
  bool seen = false;
  for (const auto& f : j["findings"]) {
    if (f["name"] != "net.core.somaxconn") continue;
    seen = true;
    EXPECT_EQ(f["severity"], "WARN");
    EXPECT_EQ(f["sysctl"]["key"], "net.core.somaxconn");
    EXPECT_EQ(f["sysctl"]["value"], "65535");
    EXPECT_EQ(f["observed"][0], 4096);
  }
  EXPECT_TRUE(seen);
}

TEST(Report, TableShowsEveryCheckAndFix) {
  Report r = container_report();
  std::string table = render_table(r);
  for (const auto& f : r.findings) EXPECT_NE(table.find(f.name), std::string::npos) << f.name;
  EXPECT_NE(table.find("STATUS CHECK"), std::string::npos);
  EXPECT_NE(table.find("fix: sysctl -w net.core.somaxconn=65535"), std::string::npos) << table;
  EXPECT_NE(table.find("run 51 worker processes"), std::string::npos);
  EXPECT_NE(table.find("nothing was changed"), std::string::npos);
  EXPECT_NE(table.find("result: FAIL (exit 2)"), std::string::npos);
}

}  // namespace
}  // namespace tcpms::doctor
