// tcpms-doctor: is this host ready for N connections, and exactly how to fix it.
// See docs/doctor.md. Changes nothing unless --apply is given.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <cstdio>
#include <map>
#include <string>

#include "doctor/apply.h"
#include "doctor/checks.h"
#include "doctor/measure.h"
#include "doctor/report.h"

namespace {

constexpr int kExitUsage = 64;  // EX_USAGE

}  // namespace

int main(int argc, char** argv) {
  using namespace tcpms::doctor;
  CLI::App app{"tcpms-doctor: checks whether this host can hold N TCP connections and prints the "
               "exact fix for each shortfall. Changes nothing unless --apply is given."};
  app.footer(
      "Exit status: 0 every check OK, 1 at least one WARN, 2 at least one FAIL, 64 bad usage.\n"
      "With --apply the status is that of the checks run again after the changes.");

  Target target;
  std::string role_text = "server";
  bool json = false;
  bool do_apply = false;
  std::string persist;
  std::string root = "/";
  int measure_pairs = 2000;

  app.add_option("-n,--connections", target.connections, "Connections to hold (N)")
      ->required()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  app.add_option("--role", role_text,
                 "server: this host accepts N; client: it opens N; both: it does both (loopback)")
      ->check(CLI::IsMember({"server", "client", "both"}))
      ->capture_default_str();
  app.add_flag("--json", json, "Print JSON instead of the table");
  auto* apply_opt = app.add_flag("--apply", do_apply,
                                 "Write the sysctl fixes (needs root); report what could not be "
                                 "changed");
  app.add_option("--persist", persist,
                 "With --apply: also write the fixes as a sysctl.d drop-in, e.g. "
                 "/etc/sysctl.d/99-tcpms.conf")
      ->needs(apply_opt);
  app.add_option("--measure-pairs", measure_pairs,
                 "Loopback pairs opened to measure kernel memory per socket (0: use the default "
                 "estimate)")
      ->check(CLI::Range(0, kMaxMeasurePairs))
      ->capture_default_str();
  app.add_option("--fd-reserve", target.fd_reserve,
                 "Descriptors per process kept for listeners, epoll, timers and logs")
      ->capture_default_str();
  app.add_option("--source-addrs", target.source_addresses,
                 "Client: source addresses it connects from")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--server-ports", target.server_ports, "Client: server ports it connects to")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--root", root,
                 "Read /proc and /sys below this directory instead of / (tests); the "
                 "measurement and RLIMIT_NOFILE are always this process's")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  target.role = *parse_role(role_text);

  Report report;
  HostView host(root, current_process_limits());
  if (measure_pairs > 0) {
    report.measurement = measure_kernel_bytes_per_socket_pair(measure_pairs);
    if (report.measurement->ok())
      target.kernel_bytes_per_socket = report.measurement->bytes_per_socket;
  }
  report.target = target;
  report.limits = host.limits();
  report.findings = run_checks(host, target);

  if (do_apply) {
    ApplyOptions options;
    if (!persist.empty()) options.persist_path = persist;
    options.origin = fmt::format("tcpms-doctor --connections {} --role {}", target.connections,
                                 to_string(target.role));
    report.applied = apply(host, report.findings, options);
    report.findings = run_checks(host, target);  // the status after the changes
  }

  if (json) {
    std::printf("%s\n", to_json(report).dump(2).c_str());
  } else {
    std::fputs(render_table(report).c_str(), stdout);
  }
  return exit_code(worst(report.findings));
}
