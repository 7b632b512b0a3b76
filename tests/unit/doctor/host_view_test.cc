#include "doctor/host_view.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cerrno>

#include "fake_host.h"

namespace tcpms::doctor {
namespace {

using testing::FakeHost;

TEST(HostView, SysctlPath) {
  EXPECT_EQ(HostView::sysctl_path("net.core.somaxconn"), "proc/sys/net/core/somaxconn");
  EXPECT_EQ(HostView::sysctl_path("fs.file-max"), "proc/sys/fs/file-max");
}

TEST(HostView, ReadsMultiFieldSysctls) {
  FakeHost host;
  auto v = host.view().sysctl_values("net.ipv4.tcp_mem");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (std::vector<std::uint64_t>{1048576, 1572864, 2097152}));
  EXPECT_EQ(host.view().sysctl_value("net.ipv4.ip_local_port_range"), 10240U);
  EXPECT_FALSE(host.view().sysctl_value("net.no.such"));
  host.sysctl("net.core.somaxconn", "lots");
  EXPECT_FALSE(host.view().sysctl_value("net.core.somaxconn"));
  // Newer kernels print LONG_MAX for an unlimited fs.file-max.
  host.sysctl("fs.file-max", "9223372036854775807");
  EXPECT_EQ(host.view().sysctl_value("fs.file-max"), 9223372036854775807ULL);
}

TEST(HostView, Meminfo) {
  FakeHost host;
  host.meminfo_kb(1234);
  EXPECT_EQ(host.view().meminfo_bytes("MemAvailable"), 1234U * 1024);
  EXPECT_EQ(host.view().meminfo_bytes("Slab"), 77480U * 1024);
  EXPECT_FALSE(host.view().meminfo_bytes("Mem"));  // whole names only
}

TEST(HostView, NetstatCountersBySection) {
  FakeHost host;
  host.netstat(5, 6);
  EXPECT_EQ(host.view().netstat_counter("TcpExt", "ListenOverflows"), 5U);
  EXPECT_EQ(host.view().netstat_counter("TcpExt", "ListenDrops"), 6U);
  EXPECT_EQ(host.view().netstat_counter("IpExt", "ListenDrops"), 12345U);
  EXPECT_FALSE(host.view().netstat_counter("TcpExt", "NoSuchCounter"));
}

TEST(HostView, WritesExistingSysctlsOnly) {
  FakeHost host;
  EXPECT_EQ(host.view().write_sysctl("net.core.somaxconn", "1000"), 0);
  EXPECT_EQ(host.view().sysctl_value("net.core.somaxconn"), 1000U);
  EXPECT_EQ(host.view().write_sysctl("net.core.no_such_knob", "1"), ENOENT);
  EXPECT_FALSE(host.view().exists(HostView::sysctl_path("net.core.no_such_knob")));
}

TEST(HostView, CurrentProcessLimitsMatchGetrlimit) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  ProcessLimits l = current_process_limits();
  if (rl.rlim_cur != RLIM_INFINITY) {
    EXPECT_EQ(l.nofile_soft, rl.rlim_cur);
  }
  if (rl.rlim_max != RLIM_INFINITY) {
    EXPECT_EQ(l.nofile_hard, rl.rlim_max);
  }
}

}  // namespace
}  // namespace tcpms::doctor
