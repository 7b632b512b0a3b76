// Writes the sysctl fixes that run_checks() proposed, and optionally a sysctl.d drop-in so they
// survive a reboot. Only tcpms-doctor --apply calls this; the checks never change the host.
// Thread-safety: any thread; it writes host-wide settings, so one caller at a time.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "doctor/checks.h"
#include "doctor/host_view.h"

namespace tcpms::doctor {

struct ApplyOptions {
  // Drop-in to write, e.g. /etc/sysctl.d/99-tcpms.conf (a host path, not below HostView's root).
  std::optional<std::filesystem::path> persist_path;
  // First line of the drop-in after its header, e.g. the command that produced it.
  std::string origin;
};

struct SysctlChange {
  std::string key;
  std::string value;  // what was written (or tried)
  std::string error;  // empty: written
};

struct ApplyReport {
  std::vector<SysctlChange> sysctls;
  // Shortfalls with no sysctl fix (RLIMIT_NOFILE, memory, counters): "name: fix".
  std::vector<std::string> not_changed;
  std::string persist_path;   // empty when none was asked for
  std::string persist_error;  // empty: written
  bool all_applied() const;
};

// Writes every sysctl fix of a finding that is not OK, through host.write_sysctl(). Does not
// stop at the first error: each change reports its own.
ApplyReport apply(const HostView& host, const std::vector<Finding>& findings,
                  const ApplyOptions& options);

// The sysctl.d text for the findings' sysctl fixes ("key = value" lines under a comment).
std::string sysctl_dropin(const std::vector<Finding>& findings, const std::string& origin);

}  // namespace tcpms::doctor
