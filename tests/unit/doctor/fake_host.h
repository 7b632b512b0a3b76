// A fake root for HostView: a temporary directory with the proc/ and sys/ files a test writes,
// removed when the FakeHost goes out of scope. Starts as a host that is ready for 1M server
// connections, so each test changes only the value it is about.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "doctor/checks.h"
#include "doctor/host_view.h"

namespace tcpms::doctor::testing {

class FakeHost {
public:
  FakeHost() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "doctor-test-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    sysctl("fs.nr_open", "2097152");
    sysctl("fs.file-max", "4194304");
    sysctl("net.core.somaxconn", "65535");
    sysctl("net.ipv4.tcp_max_syn_backlog", "65535");
    sysctl("net.core.netdev_max_backlog", "16384");
    sysctl("net.ipv4.ip_local_port_range", "10240\t65535");
    sysctl("net.ipv4.tcp_mem", "1048576\t1572864\t2097152");
    sysctl("net.ipv4.tcp_tw_reuse", "1");
    sysctl("net.ipv4.tcp_fin_timeout", "30");
    meminfo_kb(64ULL * 1024 * 1024);  // 64 GiB available
    netstat(0, 0);
    limits_ = ProcessLimits{2097152, 2097152, false};
  }
  ~FakeHost() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  void write(const std::string& relative, const std::string& text) {
    auto path = root_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }
  void sysctl(const std::string& key, const std::string& value) {
    write(HostView::sysctl_path(key), value + "\n");
  }
  void remove(const std::string& relative) { std::filesystem::remove(root_ / relative); }
  void meminfo_kb(std::uint64_t available_kb) {
    write("proc/meminfo", "MemTotal:       99999999 kB\nMemFree:        1000 kB\nMemAvailable:   " +
                              std::to_string(available_kb) +
                              " kB\nSlab:              77480 kB\nSUnreclaim:        22196 kB\n");
  }
  void netstat(std::uint64_t overflows, std::uint64_t drops) {
    write("proc/net/netstat",
          "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n"
          "TcpExt: 7 " + std::to_string(overflows) + " " + std::to_string(drops) + " 99\n"
          "IpExt: InNoRoutes ListenDrops\nIpExt: 1 12345\n");
  }
  void conntrack(std::uint64_t max, std::uint64_t count) {
    sysctl("net.netfilter.nf_conntrack_max", std::to_string(max));
    sysctl("net.netfilter.nf_conntrack_count", std::to_string(count));
    write("sys/module/nf_conntrack/parameters/hashsize", "65536\n");
  }
  ProcessLimits& limits() { return limits_; }
  HostView view() const { return HostView(root_, limits_); }
  const std::filesystem::path& root() const { return root_; }

private:
  std::filesystem::path root_;
  ProcessLimits limits_;
};

inline const Finding* find(const std::vector<Finding>& findings, const std::string& name) {
  for (const auto& f : findings)
    if (f.name == name) return &f;
  return nullptr;
}

// The finding `name` of a run for `target`; fails the test if the check is missing.
inline Finding check(const FakeHost& host, const Target& target, const std::string& name) {
  auto findings = run_checks(host.view(), target);
  const Finding* f = find(findings, name);
  EXPECT_NE(f, nullptr) << name;
  return f ? *f : Finding{};
}

inline Target million(Role role = Role::server) {
  Target t;
  t.connections = 1'000'000;
  t.role = role;
  t.kernel_bytes_per_socket = 4096;
  return t;
}

}  // namespace tcpms::doctor::testing
