// Every check below, at and above what N needs, over a fake /proc tree.
#include "doctor/checks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "fake_host.h"

namespace tcpms::doctor {
namespace {

using testing::check;
using testing::FakeHost;
using testing::find;
using testing::million;

constexpr std::uint64_t kN = 1'000'000;
constexpr std::uint64_t kPerProcess = kN + 256;  // default fd_reserve

TEST(Checks, HealthyHostIsAllOk) {
  FakeHost host;
  for (Role role : {Role::server, Role::client, Role::both}) {
    Target t = million(role);
    t.source_addresses = 19;  // 19 x 55296 ports >= 1M
    auto findings = run_checks(host.view(), t);
    for (const auto& f : findings) {
      EXPECT_EQ(f.severity, Severity::ok) << to_string(role) << " " << f.name << ": " << f.value;
      EXPECT_TRUE(f.fix.empty()) << f.name;
    }
    EXPECT_EQ(exit_code(worst(findings)), 0);
  }
}

TEST(Checks, RolesSelectTheirChecks) {
  FakeHost host;
  auto server = run_checks(host.view(), million(Role::server));
  auto client = run_checks(host.view(), million(Role::client));
  EXPECT_NE(find(server, "net.core.somaxconn"), nullptr);
  EXPECT_NE(find(server, "TcpExt.ListenOverflows"), nullptr);
  EXPECT_EQ(find(server, "net.ipv4.ip_local_port_range"), nullptr);
  EXPECT_EQ(find(server, "net.ipv4.tcp_tw_reuse"), nullptr);
  EXPECT_EQ(find(client, "net.core.somaxconn"), nullptr);
  EXPECT_EQ(find(client, "TcpExt.ListenDrops"), nullptr);
  EXPECT_NE(find(client, "net.ipv4.ip_local_port_range"), nullptr);
  EXPECT_NE(find(client, "net.ipv4.tcp_tw_reuse"), nullptr);
  EXPECT_EQ(run_checks(host.view(), million(Role::both)).size(), server.size() + 2);
}

// --- RLIMIT_NOFILE ---------------------------------------------------------------------------

TEST(Nofile, SoftAtNeedIsOk) {
  FakeHost host;
  host.limits() = {kPerProcess, kPerProcess, false};
  EXPECT_EQ(check(host, million(), "RLIMIT_NOFILE").severity, Severity::ok);
  host.limits() = {kPerProcess + 1, kPerProcess + 1, false};
  EXPECT_EQ(check(host, million(), "RLIMIT_NOFILE").severity, Severity::ok);
}

TEST(Nofile, SoftBelowRaisableHardWarns) {
  FakeHost host;
  host.limits() = {kPerProcess - 1, kPerProcess, false};
  auto f = check(host, million(), "RLIMIT_NOFILE");
  EXPECT_EQ(f.severity, Severity::warn);
  EXPECT_NE(f.fix.find("ulimit -n 1000256"), std::string::npos) << f.fix;
  EXPECT_NE(f.fix.find("LimitNOFILE=1048576"), std::string::npos) << f.fix;
  EXPECT_EQ(f.observed, (std::vector<std::uint64_t>{kPerProcess - 1, kPerProcess}));
}

TEST(Nofile, HardBelowWithoutCapabilityFailsAndCountsWorkers) {
  FakeHost host;
  host.limits() = {20000, 20000, false};  // this container
  auto f = check(host, million(), "RLIMIT_NOFILE");
  EXPECT_EQ(f.severity, Severity::fail);
  // ceil(1000000 / (20000 - 256)) = 51
  EXPECT_NE(f.fix.find("run 51 worker processes of at most 19744"), std::string::npos) << f.fix;
  EXPECT_NE(f.fix.find("LimitNOFILE=1048576"), std::string::npos);
  EXPECT_NE(f.fix.find("nofile 1048576"), std::string::npos);
  EXPECT_NE(f.value.find("no CAP_SYS_RESOURCE"), std::string::npos) << f.value;
}

TEST(Nofile, HardBelowWithCapabilityWarns) {
  FakeHost host;
  host.limits() = {20000, 20000, true};
  EXPECT_EQ(check(host, million(), "RLIMIT_NOFILE").severity, Severity::warn);
}

TEST(Nofile, UnlimitedIsPrinted) {
  FakeHost host;
  host.limits() = {UINT64_MAX, UINT64_MAX, false};
  auto f = check(host, million(), "RLIMIT_NOFILE");
  EXPECT_EQ(f.severity, Severity::ok);
  EXPECT_NE(f.value.find("unlimited"), std::string::npos);
}

TEST(Nofile, ProcessesNeeded) {
  Target t = million();
  EXPECT_EQ(processes_needed({20000, 20000, false}, t), 51U);
  EXPECT_EQ(processes_needed({20000, 20000, true}, t), 1U);
  EXPECT_EQ(processes_needed({1024, kPerProcess, false}, t), 1U);  // soft can be raised
  t.role = Role::client;
  EXPECT_EQ(processes_needed({20000, 20000, false}, t), 51U);
  t.role = Role::both;
  EXPECT_EQ(processes_needed({20000, 20000, false}, t), 102U);
  t.role = Role::server;
  t.connections = 19744;  // exactly one worker's worth
  EXPECT_EQ(processes_needed({20000, 20000, false}, t), 1U);
  t.connections = 19745;
  EXPECT_EQ(processes_needed({20000, 20000, false}, t), 2U);
}

// --- simple at-least sysctls -----------------------------------------------------------------

struct AtLeastCase {
  const char* key;
  Role role;
  std::uint64_t needed;
  Severity below;
  const char* fix_value;
};

class AtLeast : public ::testing::TestWithParam<AtLeastCase> {};

TEST_P(AtLeast, BelowAtAbove) {
  const AtLeastCase& c = GetParam();
  FakeHost host;
  host.sysctl(c.key, std::to_string(c.needed - 1));
  auto below = check(host, million(c.role), c.key);
  EXPECT_EQ(below.severity, c.below);
  EXPECT_EQ(below.sysctl_key, c.key);
  EXPECT_EQ(below.sysctl_value, c.fix_value);
  EXPECT_EQ(below.fix, std::string("sysctl -w ") + c.key + "=" + c.fix_value);
  EXPECT_EQ(below.observed, std::vector<std::uint64_t>{c.needed - 1});

  host.sysctl(c.key, std::to_string(c.needed));
  auto at = check(host, million(c.role), c.key);
  EXPECT_EQ(at.severity, Severity::ok);
  EXPECT_TRUE(at.sysctl_key.empty());

  host.sysctl(c.key, std::to_string(c.needed + 1));
  EXPECT_EQ(check(host, million(c.role), c.key).severity, Severity::ok);
}

INSTANTIATE_TEST_SUITE_P(
    Sysctls, AtLeast,
    ::testing::Values(
        AtLeastCase{"fs.nr_open", Role::server, kPerProcess, Severity::fail, "1048576"},
        AtLeastCase{"fs.file-max", Role::server, kN + 65536, Severity::fail, "2097152"},
        AtLeastCase{"fs.file-max", Role::both, 2 * kN + 65536, Severity::fail, "2097152"},
        AtLeastCase{"net.core.somaxconn", Role::server, 62500, Severity::warn, "65535"},
        AtLeastCase{"net.ipv4.tcp_max_syn_backlog", Role::both, 62500, Severity::warn, "65535"},
        AtLeastCase{"net.core.netdev_max_backlog", Role::client, 15625, Severity::warn,
                    "16384"}));

TEST(Backlog, SmallTargetsNeedTheDefault) {
  FakeHost host;
  host.sysctl("net.core.somaxconn", "4096");
  Target t = million();
  t.connections = 10'000;
  EXPECT_EQ(check(host, t, "net.core.somaxconn").severity, Severity::ok);
  EXPECT_EQ(check(host, t, "net.core.somaxconn").needed, ">= 4096");
}

TEST(Sysctl, UnreadableWarnsAsUnknown) {
  FakeHost host;
  host.remove(HostView::sysctl_path("net.core.somaxconn"));
  auto f = check(host, million(), "net.core.somaxconn");
  EXPECT_EQ(f.severity, Severity::warn);
  EXPECT_NE(f.value.find("unknown"), std::string::npos);
  EXPECT_TRUE(f.sysctl_key.empty());  // nothing to apply blindly
}

// --- ip_local_port_range -------------------------------------------------------------------

TEST(PortRange, DefaultRangeNeeds36AddressesAndOffersWiderRange) {
  FakeHost host;
  host.sysctl("net.ipv4.ip_local_port_range", "32768\t60999");  // 28232 ports
  auto f = check(host, million(Role::client), "net.ipv4.ip_local_port_range");
  EXPECT_EQ(f.severity, Severity::warn);
  EXPECT_NE(f.needed.find("36 source addrs"), std::string::npos) << f.needed;
  EXPECT_EQ(f.sysctl_value, "10240 65535");
  // 55296 ports after the fix: ceil(1000000 / 55296) = 19
  EXPECT_NE(f.fix.find("then connect from 19 source addresses"), std::string::npos) << f.fix;
  EXPECT_EQ(f.observed, (std::vector<std::uint64_t>{32768, 60999}));
}

TEST(PortRange, EnoughAddressTimesPortPairsIsOk) {
  FakeHost host;
  host.sysctl("net.ipv4.ip_local_port_range", "32768 60999");
  Target t = million(Role::client);
  t.source_addresses = 6;
  t.server_ports = 6;  // 36 pairs x 28232 >= 1M
  EXPECT_EQ(check(host, t, "net.ipv4.ip_local_port_range").severity, Severity::ok);
  t.server_ports = 5;  // 30 pairs: 846960 < 1M
  EXPECT_EQ(check(host, t, "net.ipv4.ip_local_port_range").severity, Severity::warn);
}

TEST(PortRange, WideRangeBelowNeedAsksForAddressesOnly) {
  FakeHost host;  // 10240-65535: 55296 ports
  Target t = million(Role::both);
  t.source_addresses = 18;  // 995328 < 1M
  auto f = check(host, t, "net.ipv4.ip_local_port_range");
  EXPECT_EQ(f.severity, Severity::warn);
  EXPECT_TRUE(f.sysctl_key.empty());
  EXPECT_NE(f.fix.find("connect from 19 source addresses"), std::string::npos) << f.fix;
  t.source_addresses = 19;
  EXPECT_EQ(check(host, t, "net.ipv4.ip_local_port_range").severity, Severity::ok);
}

TEST(PortRange, OneAddressEnoughForSmallTargets) {
  FakeHost host;
  host.sysctl("net.ipv4.ip_local_port_range", "32768 60999");
  Target t = million(Role::client);
  t.connections = 28232;
  EXPECT_EQ(check(host, t, "net.ipv4.ip_local_port_range").severity, Severity::ok);
  t.connections = 28233;
  EXPECT_EQ(check(host, t, "net.ipv4.ip_local_port_range").severity, Severity::warn);
}

// --- tcp_mem and memory --------------------------------------------------------------------

TEST(TcpMem, MaxBelowAtAbove) {
  FakeHost host;
  host.sysctl("net.ipv4.tcp_mem", "287901 383869 999999");
  auto f = check(host, million(), "net.ipv4.tcp_mem");
  EXPECT_EQ(f.severity, Severity::warn);
  // Never lowers a value: max(current, needed share) for each of the three.
  EXPECT_EQ(f.sysctl_value, "500000 750000 1000000");
  EXPECT_EQ(f.observed, (std::vector<std::uint64_t>{287901, 383869, 999999}));
  host.sysctl("net.ipv4.tcp_mem", "287901 383869 1000000");
  EXPECT_EQ(check(host, million(), "net.ipv4.tcp_mem").severity, Severity::ok);
  host.sysctl("net.ipv4.tcp_mem", "287901 383869 1000001");
  EXPECT_EQ(check(host, million(), "net.ipv4.tcp_mem").severity, Severity::ok);
  // Both ends on this host: twice the sockets.
  EXPECT_EQ(check(host, million(Role::both), "net.ipv4.tcp_mem").severity, Severity::warn);
}

TEST(Memory, BelowAtAbove) {
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t sockets_kb = kN * 4096 / 1024;
  const std::uint64_t need_kb = kN * (4096 + page) / 1024;
  FakeHost host;
  host.meminfo_kb(need_kb);
  auto at = check(host, million(), "MemAvailable");
  EXPECT_EQ(at.severity, Severity::ok);
  EXPECT_EQ(at.observed, std::vector<std::uint64_t>{need_kb * 1024});
  EXPECT_NE(at.needed.find("measured"), std::string::npos);
  host.meminfo_kb(need_kb - 1);
  EXPECT_EQ(check(host, million(), "MemAvailable").severity, Severity::warn);
  host.meminfo_kb(sockets_kb - 1);  // not even the sockets fit
  auto fail = check(host, million(), "MemAvailable");
  EXPECT_EQ(fail.severity, Severity::fail);
  EXPECT_NE(fail.fix.find("hosts"), std::string::npos);
}

TEST(Memory, DefaultEstimateIsLabelled) {
  FakeHost host;
  Target t = million();
  t.kernel_bytes_per_socket.reset();
  EXPECT_NE(check(host, t, "MemAvailable").needed.find("default"), std::string::npos);
}

// --- conntrack ---------------------------------------------------------------------------------

TEST(Conntrack, NotLoadedIsOk) {
  FakeHost host;
  auto f = check(host, million(), "net.netfilter.nf_conntrack_max");
  EXPECT_EQ(f.severity, Severity::ok);
  EXPECT_NE(f.value.find("not loaded"), std::string::npos);
}

TEST(Conntrack, ActiveBelowFailsAtIsOk) {
  FakeHost host;
  host.conntrack(1'249'999, 17);  // need N + 25%
  auto f = check(host, million(), "net.netfilter.nf_conntrack_max");
  EXPECT_EQ(f.severity, Severity::fail);
  EXPECT_EQ(f.sysctl_value, "2097152");
  EXPECT_NE(f.fix.find("hashsize"), std::string::npos);
  EXPECT_NE(f.value.find("hashsize 65536"), std::string::npos) << f.value;
  EXPECT_EQ(f.observed, (std::vector<std::uint64_t>{1'249'999, 17}));
  host.conntrack(1'250'000, 17);
  EXPECT_EQ(check(host, million(), "net.netfilter.nf_conntrack_max").severity, Severity::ok);
  host.conntrack(1'250'001, 17);
  EXPECT_EQ(check(host, million(), "net.netfilter.nf_conntrack_max").severity, Severity::ok);
}

TEST(Conntrack, LoadedButIdleOnlyWarns) {
  FakeHost host;
  host.conntrack(262144, 0);  // this machine
  EXPECT_EQ(check(host, million(), "net.netfilter.nf_conntrack_max").severity, Severity::warn);
}

// --- churn ---------------------------------------------------------------------------------

TEST(TwReuse, ClientNeedsOneBothAcceptsLoopbackOnly) {
  FakeHost host;
  for (auto [value, client, both] :
       {std::tuple{"0", Severity::warn, Severity::warn}, std::tuple{"1", Severity::ok, Severity::ok},
        std::tuple{"2", Severity::warn, Severity::ok}}) {
    host.sysctl("net.ipv4.tcp_tw_reuse", value);
    EXPECT_EQ(check(host, million(Role::client), "net.ipv4.tcp_tw_reuse").severity, client)
        << value;
    EXPECT_EQ(check(host, million(Role::both), "net.ipv4.tcp_tw_reuse").severity, both) << value;
  }
  host.sysctl("net.ipv4.tcp_tw_reuse", "2");
  EXPECT_EQ(check(host, million(Role::client), "net.ipv4.tcp_tw_reuse").sysctl_value, "1");
}

TEST(FinTimeout, AboveThirtyWarns) {
  FakeHost host;
  host.sysctl("net.ipv4.tcp_fin_timeout", "31");
  auto f = check(host, million(), "net.ipv4.tcp_fin_timeout");
  EXPECT_EQ(f.severity, Severity::warn);
  EXPECT_EQ(f.fix, "sysctl -w net.ipv4.tcp_fin_timeout=30");
  host.sysctl("net.ipv4.tcp_fin_timeout", "30");
  EXPECT_EQ(check(host, million(), "net.ipv4.tcp_fin_timeout").severity, Severity::ok);
  host.sysctl("net.ipv4.tcp_fin_timeout", "15");
  EXPECT_EQ(check(host, million(), "net.ipv4.tcp_fin_timeout").severity, Severity::ok);
}

TEST(Churn, SmallTargetsOnlyReport) {
  FakeHost host;
  host.sysctl("net.ipv4.tcp_fin_timeout", "60");
  host.sysctl("net.ipv4.tcp_tw_reuse", "0");
  Target t = million(Role::client);
  t.connections = 9999;
  EXPECT_EQ(check(host, t, "net.ipv4.tcp_fin_timeout").severity, Severity::ok);
  EXPECT_EQ(check(host, t, "net.ipv4.tcp_tw_reuse").severity, Severity::ok);
  t.connections = 10000;
  EXPECT_EQ(check(host, t, "net.ipv4.tcp_fin_timeout").severity, Severity::warn);
  EXPECT_EQ(check(host, t, "net.ipv4.tcp_tw_reuse").severity, Severity::warn);
}

// --- /proc/net/netstat ------------------------------------------------------------------------

TEST(ListenCounters, NonZeroWarns) {
  FakeHost host;
  host.netstat(0, 0);
  EXPECT_EQ(check(host, million(), "TcpExt.ListenOverflows").severity, Severity::ok);
  EXPECT_EQ(check(host, million(), "TcpExt.ListenDrops").severity, Severity::ok);
  host.netstat(3, 4);
  auto overflows = check(host, million(), "TcpExt.ListenOverflows");
  EXPECT_EQ(overflows.severity, Severity::warn);
  EXPECT_EQ(overflows.observed, std::vector<std::uint64_t>{3});
  // IpExt also has a "ListenDrops" column in the fake file; the TcpExt one must be read.
  EXPECT_EQ(check(host, million(), "TcpExt.ListenDrops").observed, std::vector<std::uint64_t>{4});
}

TEST(ListenCounters, MissingFileWarnsAsUnknown) {
  FakeHost host;
  host.remove("proc/net/netstat");
  EXPECT_NE(check(host, million(), "TcpExt.ListenOverflows").value.find("unknown"),
            std::string::npos);
}

// --- summaries -----------------------------------------------------------------------------

TEST(Summary, WorstAndExitCodes) {
  EXPECT_EQ(worst({}), Severity::ok);
  std::vector<Finding> f(3);
  f[1].severity = Severity::warn;
  EXPECT_EQ(exit_code(worst(f)), 1);
  f[2].severity = Severity::fail;
  EXPECT_EQ(exit_code(worst(f)), 2);
}

TEST(Summary, ShortfallMessagesOnePerProblem) {
  FakeHost host;
  host.sysctl("net.core.somaxconn", "4096");
  host.sysctl("net.ipv4.tcp_fin_timeout", "60");
  auto messages = shortfall_messages(run_checks(host.view(), million()));
  ASSERT_EQ(messages.size(), 2U);
  EXPECT_EQ(messages[0],
            "WARN: net.core.somaxconn is 4096, needs >= 62500; fix: sysctl -w "
            "net.core.somaxconn=65535");
  for (const auto& m : messages) EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(Summary, RoleNames) {
  for (Role r : {Role::server, Role::client, Role::both}) EXPECT_EQ(parse_role(to_string(r)), r);
  EXPECT_FALSE(parse_role("proxy"));
}

}  // namespace
}  // namespace tcpms::doctor
