// Runs one process's share of a workload: a tcpms::Server with --threads event loops and no
// listeners, one LoopDriver per loop, and the main thread watching. The main thread samples
// the drivers' live counters into the per-second series, reports progress, honours signals
// and --max-time, and collects each driver's result through a task on its loop.
//
// Threads: call from main (the thread that owns the SignalWatcher).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "benchkit/report.h"
#include "split.h"
#include "workload.h"

namespace tcpms::benchapp {

struct LiveTotals {
  double elapsed_s = 0;
  int64_t open = 0;
  int64_t established = 0;
  int64_t ops = 0;
  int64_t errors = 0;
  bool done = false;
};

struct RunHooks {
  std::function<void(const LiveTotals&)> on_progress;  // about every 250 ms
  std::function<void(size_t second)> on_second;        // once per second of the run
  // Every driver is done and the connections are still open: the moment to sample the
  // server (single process) or hand the result to the parent and wait (worker).
  std::function<void(bench::RunResult&)> before_teardown;
};

// Returns this process's merged result (workload and parameters not set). Throws
// std::runtime_error if the engine cannot start.
bench::RunResult run_local(Workload& workload, const CommonOptions& opt, const TargetPlan& plan,
                           const Share& process_share, int signal_fd, const RunHooks& hooks);

// Reads every ready signal from a signalfd; true if one arrived within `timeout_ms`.
bool wait_signal(int signal_fd, int timeout_ms);

}  // namespace tcpms::benchapp
