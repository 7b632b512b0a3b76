// The process that replaces this one on SIGUSR2 (docs/upgrade.md): started from the binary
// path resolved at start-up (so a new binary installed at the same path is what runs), with
// this process's command line, and one end of a Unix socket pair whose descriptor number it
// finds in TCPMS_HANDOVER_FD.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "tcpms/unique_fd.h"

namespace tcpms::app {

inline constexpr const char* kHandoverFdVariable = "TCPMS_HANDOVER_FD";

// This program's path, resolved now (readlink /proc/self/exe): call at start-up, before a
// new binary may replace the file.
std::string own_binary_path();

struct Successor {
  pid_t pid = -1;
  UniqueFd channel;   // our end of the pair
  std::string error;  // empty when it started
};
// Starts `binary` with `argv` (argv[0] included) and the environment plus TCPMS_HANDOVER_FD.
Successor start_successor(const std::string& binary, const std::vector<std::string>& argv);

// Stops a successor that did not take over: it gets a moment to exit by itself (one that
// refused logs why and exits), then SIGKILL. Returns how it ended, for the log ("exited with
// code 69").
std::string stop_successor(pid_t pid);

// In the new process: the handover socket named by TCPMS_HANDOVER_FD (removed from the
// environment, so the server's own successor does not inherit a stale number), or nothing.
std::optional<UniqueFd> handover_socket_from_environment(std::string& error);

// The pid file: written whole (a temporary file renamed over it), read back as a number.
bool write_pid_file(const std::string& path, pid_t pid, std::string& error);
pid_t read_pid_file(const std::string& path);

// Beside the pid file, "F.upgrade": why the server in F did not hand over on its last SIGUSR2,
// one line, written whole. `tcpms-server --upgrade` removes it before it signals and reports
// it as soon as it appears, instead of waiting for a new pid that will not come.
std::string upgrade_outcome_path(const std::string& pid_file);
void write_upgrade_refusal(const std::string& pid_file, const std::string& why);
std::optional<std::string> read_upgrade_refusal(const std::string& pid_file);

}  // namespace tcpms::app
