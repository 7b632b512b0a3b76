// tcpms-bench: the load generator. Parses WORKLOAD [options], plans targets and source
// addresses, runs in this process or in worker processes (workers.h) when one process's
// descriptor limit is too small, and prints the summary, --json and --report.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "benchkit/progress.h"
#include "output.h"
#include "runner.h"
#include "server_monitor.h"
#include "tcpms/signal_watcher.h"
#include "workers.h"

namespace tcpms::benchapp {
namespace {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailures = 1,  // the run finished, some operations failed (counted by cause)
  kExitUsage = 64,
  kExitUnavailable = 69,
  kExitSoftware = 70,
};

// Raises the soft descriptor limit to the hard one; returns the soft limit in force.
int64_t raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? (int64_t{1} << 30) : static_cast<int64_t>(rl.rlim_cur);
}

int run(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("tcpms-bench");  // stdout is for --json
  spdlog::set_default_logger(logger);
  const int64_t nofile = raise_nofile();
  SignalWatcher signals({SIGINT, SIGTERM});

  CLI::App app{"tcpms-bench: load generator for tcpms (and any TCP echo server)"};
  app.require_subcommand(1);
  CommonOptions common;
  // The shared flags belong to the program, so they may come before the workload
  // (`tcpms-bench --target X mqtt-fanout`) or after it: a workload passes the flags it does
  // not know up (fallthrough).
  add_common_options(app, common);
  auto workloads = make_workloads();
  std::vector<std::pair<CLI::App*, Workload*>> commands;
  for (auto& w : workloads) {
    CLI::App* cmd = app.add_subcommand(std::string(w->name()), std::string(w->description()));
    cmd->fallthrough();
    cmd->footer("Options shared by every workload (--target, --connections, --rate, --json, "
                "--report, --server-pid, ...): tcpms-bench --help. They may come before or "
                "after the workload's name.");
    w->add_options(*cmd);
    commands.emplace_back(cmd, w.get());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  Workload* workload = nullptr;
  for (auto& [cmd, w] : commands) {
    if (cmd->parsed()) workload = w;
  }
  if (common.connections < 0) common.connections = workload->default_connections();
  std::string error = validate(common);
  if (error.empty()) error = workload->validate(common);
  TargetPlan plan;
  if (error.empty()) {
    if (auto t = parse_targets(common.targets, &error)) plan.targets = std::move(*t);
  }
  std::vector<Endpoint> given;
  if (error.empty() && !common.source_ips.empty()) {
    if (auto s = parse_source_ips(common.source_ips, &error)) given = std::move(*s);
  }
  if (!error.empty()) {
    std::fprintf(stderr, "tcpms-bench %s: %s\n", std::string(workload->name()).c_str(), error.c_str());
    return kExitUsage;
  }
  const int64_t peak = workload->peak_connections(common);
  plan.sources = plan_sources(plan.targets, peak, given);

  if (common.is_worker()) return run_worker(*workload, common, plan, signals.fd());

  RunLayout layout;
  layout.nofile = nofile;
  layout.threads = common.threads;
  layout.targets = plan.targets.size();
  layout.sources = plan.sources;
  layout.processes = common.processes > 0 ? common.processes : processes_needed(peak, nofile);
  if (layout.processes == 1 && peak > nofile - kReservedFds) {
    std::fprintf(stderr, "tcpms-bench: %lld connections in one process exceed RLIMIT_NOFILE %lld; "
                 "drop --processes 1 to let the bench spread them over worker processes\n",
                 static_cast<long long>(peak), static_cast<long long>(nofile));
    return kExitUsage;
  }

  ServerMonitor monitor(common.server_pid);
  if (std::string err = monitor.begin(); !err.empty()) {
    std::fprintf(stderr, "tcpms-bench: %s\n", err.c_str());
    return kExitUsage;
  }
  FILE* human = common.json ? stderr : stdout;
  bench::ProgressLine progress(STDERR_FILENO, !common.no_progress && ::isatty(STDERR_FILENO));
  const int64_t target_conns = workload->name() == "churn" ? 0 : common.connections;
  double last_elapsed = 0;
  int64_t last_count = 0;
  auto show = [&](const LiveTotals& t) {
    if (!progress.enabled()) return;
    const double dt = t.elapsed_s - last_elapsed;
    const int64_t count = t.ops > 0 ? t.ops : t.established;
    if (dt < 0.2) return;
    bench::ProgressStats s{t.elapsed_s, t.open, target_conns,
                           static_cast<double>(count - std::min(count, last_count)) / dt, t.errors};
    last_elapsed = t.elapsed_s;
    last_count = count;
    progress.update(bench::format_progress(s));
  };
  std::fprintf(human, "tcpms-bench %s: %s; %d process%s x %u thread%s\n", std::string(workload->name()).c_str(),
               plan.sources.description.c_str(), layout.processes, layout.processes == 1 ? "" : "es",
               common.threads, common.threads == 1 ? "" : "s");
  if (!plan.sources.warning.empty()) std::fprintf(stderr, "tcpms-bench: warning: %s\n", plan.sources.warning.c_str());
  std::fflush(human);

  bench::RunResult result;
  if (layout.processes == 1) {
    RunHooks hooks;
    hooks.on_progress = show;
    hooks.on_second = [&](size_t s) { monitor.tick(s); };
    hooks.before_teardown = [&](bench::RunResult& r) { monitor.end(r); };
    result = run_local(*workload, common, plan, workload->whole_share(common), signals.fd(), hooks);
  } else {
    std::vector<std::string> args(argv, argv + argc);
    ParentHooks hooks;
    hooks.on_progress = show;
    hooks.on_second = [&](size_t s) { monitor.tick(s); };
    bench::RunResult after;  // the server samples, taken while workers still hold connections
    hooks.before_release = [&] { monitor.end(after); };
    result = run_workers(common, args, layout.processes, signals.fd(), hooks);
    result.server_before = after.server_before;
    result.server_after = after.server_after;
    result.series.merge(after.series);
    for (const auto& [name, n] : after.counters) result.counters[name] = n;
  }
  progress.finish();
  result.workload = std::string(workload->name());
  result.parameters = common_parameters(common);
  result.parameters["processes"] = layout.processes;
  result.parameters.update(workload->parameters());
  workload->finalize(result, common);
  layout.netstat = monitor.netstat_json();

  std::fputs(human_summary(result, layout).c_str(), human);
  std::fflush(human);
  if (common.json) {
    std::string text = machine_json(result, layout).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fputs(text.c_str(), stdout);
    std::fputc('\n', stdout);
  }
  if (!common.report_path.empty()) {
    if (std::string err = write_report(common.report_path, result); !err.empty()) {
      std::fprintf(stderr, "tcpms-bench: %s\n", err.c_str());
      return kExitUnavailable;
    }
    std::fprintf(human, "report  %s\n", common.report_path.c_str());
  }
  return result.failure_total() > 0 ? kExitFailures : kExitOk;
}

}  // namespace
}  // namespace tcpms::benchapp

int main(int argc, char** argv) {
  try {
    return tcpms::benchapp::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tcpms-bench: %s\n", e.what());
    return tcpms::benchapp::kExitSoftware;
  }
}
