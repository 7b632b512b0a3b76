#include "doctor/apply.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>

namespace tcpms::doctor {

bool ApplyReport::all_applied() const {
  for (const auto& c : sysctls)
    if (!c.error.empty()) return false;
  return not_changed.empty() && persist_error.empty();
}

std::string sysctl_dropin(const std::vector<Finding>& findings, const std::string& origin) {
  std::string out = "# Written by tcpms-doctor --apply --persist; see docs/doctor.md.\n";
  if (!origin.empty()) out += fmt::format("# {}\n", origin);
  for (const auto& f : findings) {
    if (f.severity == Severity::ok || f.sysctl_key.empty()) continue;
    out += fmt::format("# {}: was {}, needs {}\n{} = {}\n", f.name, f.value, f.needed,
                       f.sysctl_key, f.sysctl_value);
  }
  return out;
}

ApplyReport apply(const HostView& host, const std::vector<Finding>& findings,
                  const ApplyOptions& options) {
  ApplyReport report;
  for (const auto& f : findings) {
    if (f.severity == Severity::ok) continue;
    if (f.sysctl_key.empty()) {
      std::string fix = f.fix.substr(0, f.fix.find('\n'));
      report.not_changed.push_back(
          fmt::format("{}: {}", f.name, fix.empty() ? "no automatic fix" : fix));
      continue;
    }
    SysctlChange change{f.sysctl_key, f.sysctl_value, ""};
    if (int err = host.write_sysctl(f.sysctl_key, f.sysctl_value); err != 0)
      change.error = std::strerror(err);
    report.sysctls.push_back(std::move(change));
  }
  if (options.persist_path) {
    report.persist_path = options.persist_path->string();
    // Write beside the target and rename, so a reader never sees half a file.
    std::filesystem::path tmp = *options.persist_path;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << sysctl_dropin(findings, options.origin);
      out.close();
      if (!out) report.persist_error = fmt::format("cannot write {}", tmp.string());
    }
    std::error_code ec;
    if (report.persist_error.empty()) {
      std::filesystem::rename(tmp, *options.persist_path, ec);
      if (ec) report.persist_error = ec.message();
    }
    if (!report.persist_error.empty()) std::filesystem::remove(tmp, ec);
  }
  return report;
}

}  // namespace tcpms::doctor
