#include "doctor/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace tcpms::doctor {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::uint64_t bytes_per_socket(const Report& r) {
  return r.target.kernel_bytes_per_socket.value_or(kDefaultKernelBytesPerSocket);
}

}  // namespace

nlohmann::json to_json(const Finding& f) {
  nlohmann::json j = {{"name", f.name},
                      {"value", f.value},
                      {"needed", f.needed},
                      {"severity", to_string(f.severity)},
                      {"fix", f.fix},
                      {"observed", f.observed}};
  j["sysctl"] = f.sysctl_key.empty()
                    ? nlohmann::json(nullptr)
                    : nlohmann::json{{"key", f.sysctl_key}, {"value", f.sysctl_value}};
  return j;
}

nlohmann::json to_json(const Report& r) {
  const Severity w = worst(r.findings);
  nlohmann::json j = {
      {"connections", r.target.connections},
      {"role", to_string(r.target.role)},
      {"fd_reserve", r.target.fd_reserve},
      {"limits",
       {{"nofile_soft", r.limits.nofile_soft},
        {"nofile_hard", r.limits.nofile_hard},
        {"can_raise_hard", r.limits.can_raise_hard}}},
      {"processes_needed", processes_needed(r.limits, r.target)},
      {"kernel_bytes_per_socket", bytes_per_socket(r)},
      {"kernel_bytes_source", r.target.kernel_bytes_per_socket ? "measured" : "default"},
      {"worst", to_string(w)},
      {"exit_code", exit_code(w)},
  };
  j["findings"] = nlohmann::json::array();
  for (const auto& f : r.findings) j["findings"].push_back(to_json(f));
  if (r.measurement) {
    const Measurement& m = *r.measurement;
    nlohmann::json mj = {{"pairs", m.pairs},
                         {"rounds", m.rounds},
                         {"bytes_per_pair", m.bytes_per_pair},
                         {"bytes_per_socket", m.bytes_per_socket},
                         {"source", m.source},
                         {"error", m.error}};
    mj["caches"] = nlohmann::json::array();
    for (const auto& c : m.caches) mj["caches"].push_back({{"cache", c.cache}, {"bytes", c.bytes}});
    j["measurement"] = mj;
  } else {
    j["measurement"] = nullptr;
  }
  if (r.applied) {
    const ApplyReport& a = *r.applied;
    nlohmann::json aj;
    aj["sysctls"] = nlohmann::json::array();
    for (const auto& c : a.sysctls)
      aj["sysctls"].push_back({{"key", c.key}, {"value", c.value}, {"error", c.error}});
    aj["not_changed"] = a.not_changed;
    aj["persist_path"] = a.persist_path;
    aj["persist_error"] = a.persist_error;
    j["apply"] = aj;
  } else {
    j["apply"] = nullptr;
  }
  return j;
}

std::string render_table(const Report& r) {
  std::size_t name_w = 5;
  std::size_t value_w = 5;
  for (const auto& f : r.findings) {
    name_w = std::max(name_w, f.name.size());
    value_w = std::max(value_w, f.value.size());
  }
  std::string out = fmt::format("tcpms-doctor: {} connections, role {}\n\n", r.target.connections,
                                to_string(r.target.role));
  // The last column is not padded: no trailing blanks.
  out += fmt::format("{:<6} {:<{}}  {:<{}}  {}\n", "STATUS", "CHECK", name_w, "VALUE", value_w,
                     "NEEDED");
  for (const auto& f : r.findings) {
    out += fmt::format("{:<6} {:<{}}  {:<{}}  {}\n", to_string(f.severity), f.name, name_w,
                       f.value, value_w, f.needed);
    bool first = true;
    for (const auto& line : lines_of(f.fix)) {
      out += fmt::format("{:<7}{} {}\n", "", first ? "fix:" : "    ", line);
      first = false;
    }
  }
  out += "\n";
  if (r.measurement) {
    const Measurement& m = *r.measurement;
    if (m.ok()) {
      out += fmt::format("kernel memory per socket: {} B measured ({} loopback pairs x {} rounds, "
                         "{})",
                         m.bytes_per_socket, m.pairs, m.rounds, m.source);
      std::string caches;
      for (std::size_t i = 0; i < m.caches.size() && i < 6; ++i)
        caches += fmt::format("{}{} {} B/pair", i ? ", " : "", m.caches[i].cache,
                              m.caches[i].bytes / std::max(m.pairs, 1));
      out += caches.empty() ? "\n" : fmt::format(": {}\n", caches);
    } else {
      out += fmt::format("kernel memory per socket: {} B default (measurement failed: {})\n",
                         kDefaultKernelBytesPerSocket, m.error);
    }
  } else {
    out += fmt::format("kernel memory per socket: {} B {}\n", bytes_per_socket(r),
                       r.target.kernel_bytes_per_socket ? "given" : "default (not measured)");
  }
  const std::uint64_t procs = processes_needed(r.limits, r.target);
  if (procs > 1)
    out += fmt::format("RLIMIT_NOFILE hard {} cannot be raised here: run {} worker processes "
                       "(each at most {} connections)\n",
                       r.limits.nofile_hard, procs,
                       r.limits.nofile_hard > r.target.fd_reserve
                           ? r.limits.nofile_hard - r.target.fd_reserve
                           : 0);
  if (r.applied) {
    const ApplyReport& a = *r.applied;
    for (const auto& c : a.sysctls)
      out += c.error.empty() ? fmt::format("applied: {} = {}\n", c.key, c.value)
                             : fmt::format("NOT applied: {} = {} ({})\n", c.key, c.value, c.error);
    for (const auto& n : a.not_changed) out += fmt::format("not changed: {}\n", n);
    if (!a.persist_path.empty())
      out += a.persist_error.empty()
                 ? fmt::format("persisted: {}\n", a.persist_path)
                 : fmt::format("NOT persisted: {} ({})\n", a.persist_path, a.persist_error);
  } else {
    bool any_sysctl = std::any_of(r.findings.begin(), r.findings.end(), [](const Finding& f) {
      return f.severity != Severity::ok && !f.sysctl_key.empty();
    });
    if (any_sysctl)
      out += "nothing was changed: --apply writes the sysctl fixes (as root), "
             "--persist /etc/sysctl.d/99-tcpms.conf keeps them over reboots\n";
  }
  const Severity w = worst(r.findings);
  out += fmt::format("result: {} (exit {})\n", to_string(w), exit_code(w));
  return out;
}

}  // namespace tcpms::doctor
