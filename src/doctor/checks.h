// Host readiness checks for N connections: pure functions of a HostView and a Target, so each
// one is unit-tested over a fake /proc tree. The command (tcpms-doctor) and the server's start-up
// both call run_checks(); nothing here changes the host (see apply.h for that).
// Thread-safety: free functions over const inputs; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doctor/host_view.h"

namespace tcpms::doctor {

enum class Role { server, client, both };
enum class Severity { ok = 0, warn = 1, fail = 2 };

std::string_view to_string(Role role);
std::string_view to_string(Severity severity);  // "OK", "WARN", "FAIL"
std::optional<Role> parse_role(std::string_view text);

// Kernel bytes per TCP socket used when nothing was measured: a 6.1 kernel's TCP slab object
// (~2.4 KiB) plus socket inode, dentry, file, epoll item and bind bucket, rounded up.
// measure_kernel_bytes_per_socket_pair() replaces it with the figure of this kernel.
inline constexpr std::uint64_t kDefaultKernelBytesPerSocket = 4096;

struct Target {
  std::uint64_t connections = 0;
  Role role = Role::server;
  // Descriptors one process keeps for things other than connections: listeners, epoll, eventfds,
  // timerfds, logs, the admin socket and the spare fd shed on EMFILE.
  std::uint64_t fd_reserve = 256;
  // Client side: each (source address, server address:port) pair has its own ephemeral range.
  std::uint64_t source_addresses = 1;
  std::uint64_t server_ports = 1;
  // Measured by measure_kernel_bytes_per_socket_pair(); nullopt uses the default above.
  std::optional<std::uint64_t> kernel_bytes_per_socket;
};

struct Finding {
  std::string name;    // "net.core.somaxconn", "RLIMIT_NOFILE hard", "MemAvailable"
  std::string value;   // what the host has, human-readable
  std::string needed;  // what Target needs, human-readable
  Severity severity = Severity::ok;
  std::string fix;     // exact lines to apply; empty when OK. May hold several lines.
  // When the fix is one sysctl that apply() can write: key and the value to write.
  std::string sysctl_key;
  std::string sysctl_value;
  // The raw numbers read from the host, in the order of `value` (for JSON consumers).
  std::vector<std::uint64_t> observed;
};

// Every check, in a stable order. Checks that do not apply to the role are left out.
std::vector<Finding> run_checks(const HostView& host, const Target& target);

// Worker processes needed when one process cannot hold every connection of its side:
// ceil(N / (nofile - reserve)) per side, using the hard limit if the process can raise its soft
// limit to it. Role::both adds the server's and the client's. 1 when one process suffices.
std::uint64_t processes_needed(const ProcessLimits& limits, const Target& target);

Severity worst(const std::vector<Finding>& findings);
// Exit status of tcpms-doctor: 0 all OK, 1 any WARN, 2 any FAIL.
int exit_code(Severity severity);

// One log line per finding that is not OK, for the server's start-up:
// "net.core.somaxconn is 4096, 1000000 connections need 62500; fix: ...".
std::vector<std::string> shortfall_messages(const std::vector<Finding>& findings);

// What the server calls at start-up, after it has raised its soft RLIMIT_NOFILE: the checks for
// its configured maximum against the real host, as log lines (empty when all is well).
// Reads a few /proc files; does not measure, and changes nothing.
std::vector<std::string> startup_shortfalls(std::uint64_t max_connections,
                                            Role role = Role::server);

}  // namespace tcpms::doctor
