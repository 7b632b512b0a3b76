// HostView: everything the doctor reads about a host, relative to a root directory ("/" in
// production, a temporary tree in tests), plus the process limits, which are injected because a
// test cannot fake getrlimit(). Reads never throw: a missing or unreadable file is std::nullopt,
// which the checks report as "unknown" rather than guessing.
// Thread-safety: immutable after construction; any thread may call the const methods.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tcpms::doctor {

// RLIMIT_NOFILE of the process that will hold the connections, and whether it may raise the
// hard limit (root in the init user namespace, i.e. CAP_SYS_RESOURCE).
struct ProcessLimits {
  std::uint64_t nofile_soft = 0;
  std::uint64_t nofile_hard = 0;
  bool can_raise_hard = false;  // CAP_SYS_RESOURCE in the effective set
};

// The limits of the calling process: getrlimit(RLIMIT_NOFILE) plus CapEff from
// /proc/self/status. RLIM_INFINITY is reported as UINT64_MAX.
ProcessLimits current_process_limits();

class HostView {
public:
  HostView(std::filesystem::path root, ProcessLimits limits)
      : root_(std::move(root)), limits_(limits) {}

  // The real host: root "/" and current_process_limits().
  static HostView system();

  const std::filesystem::path& root() const { return root_; }
  const ProcessLimits& limits() const { return limits_; }

  // A file below the root, e.g. "proc/meminfo". Whole contents, or nullopt.
  std::optional<std::string> read_file(std::string_view relative) const;
  bool exists(std::string_view relative) const;

  // "net.core.somaxconn" -> <root>/proc/sys/net/core/somaxconn, whitespace-separated fields
  // parsed as unsigned integers (tcp_mem and ip_local_port_range have several).
  std::optional<std::vector<std::uint64_t>> sysctl_values(std::string_view key) const;
  std::optional<std::uint64_t> sysctl_value(std::string_view key) const;

  // Writes a sysctl below the root. Returns 0 or the errno of the failed open/write.
  int write_sysctl(std::string_view key, std::string_view value) const;

  // A field of proc/meminfo, converted from kB to bytes.
  std::optional<std::uint64_t> meminfo_bytes(std::string_view field) const;

  // A counter of proc/net/netstat, e.g. ("TcpExt", "ListenOverflows").
  std::optional<std::uint64_t> netstat_counter(std::string_view section,
                                               std::string_view name) const;

  // "net.core.somaxconn" -> "proc/sys/net/core/somaxconn".
  static std::string sysctl_path(std::string_view key);

private:
  std::filesystem::path root_;
  ProcessLimits limits_;
};

}  // namespace tcpms::doctor
