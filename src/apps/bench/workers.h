// Worker processes: how a run goes beyond one process's descriptor limit.
//
// The parent fork+execs itself once per worker with the same arguments plus the hidden
// `--worker-index i --worker-count n`. Each worker recomputes the same target/source plan and
// takes its part of the run (split_share), so nothing but the command line crosses over.
// A worker writes newline-delimited JSON to fd 3 (a pipe to the parent):
//   {"progress": {"open":..,"established":..,"ops":..,"errors":..,"done":..}}  ~4 times a second
//   {"result": <RunResult>}                                                   once, at the end
// then keeps its connections open until its stdin (another pipe) reaches EOF: the parent
// closes it once every worker has reported and the server has been sampled, so the "after"
// sample sees every connection still open. A worker whose pipe ends without a result is
// counted as a failure (worker_lost).
//
// Threads: the main thread only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runner.h"

namespace tcpms::benchapp {

// The fd a worker writes its lines to.
inline constexpr int kWorkerResultFd = 3;

// Worker side: runs this worker's share and reports to the parent. Returns the exit code.
int run_worker(Workload& workload, const CommonOptions& opt, const TargetPlan& plan, int signal_fd);

struct ParentHooks {
  std::function<void(const LiveTotals&)> on_progress;
  std::function<void(size_t second)> on_second;
  // Every worker has reported; their connections are still open.
  std::function<void()> before_release;
};

// Parent side: starts `processes` workers running `argv` (this process's own arguments),
// waits for their results and merges them.
bench::RunResult run_workers(const CommonOptions& opt, const std::vector<std::string>& argv,
                             int processes, int signal_fd, const ParentHooks& hooks);

}  // namespace tcpms::benchapp
