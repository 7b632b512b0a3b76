// Supervisor: runs a server as P worker processes that share its listening ports through
// SO_REUSEPORT, so one server can hold more connections than one process's descriptor limit
// (RLIMIT_NOFILE), as container platforms force.
//
// The supervisor never starts threads or loops: it forks the workers (which are ordinary
// tcpms servers with disjoint loop-index ranges), restarts one that dies while the others
// keep their connections, forwards SIGTERM/SIGINT/SIGHUP, and exits 0 once every worker has
// drained and exited 0. A worker that exits with one of `fatal_exit_codes` stops the server.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "tcpms/signal_watcher.h"

namespace tcpms::workers {

struct SupervisorConfig {
  unsigned processes = 2;
  // After a crash the slot is restarted at once; a worker that keeps crashing within
  // `crash_window` is restarted with a doubling delay up to `max_backoff`.
  std::chrono::milliseconds crash_window{5000};
  std::chrono::milliseconds max_backoff{5000};
  // After forwarding SIGTERM, how long to wait before SIGKILL.
  std::chrono::milliseconds stop_timeout{30000};
  // Exit codes that say a worker cannot start at all (bad configuration, a port or a store
  // it cannot open): restarting would fail the same way forever, so the supervisor stops the
  // other workers and exits with that code instead. 0 ends the list.
  int fatal_exit_codes[4] = {64, 69, 0, 0};
};

// The body of worker `index`; its return value is the worker's exit code. It runs in a fresh
// child process that has inherited `signals` (a signalfd reads the child's own signals).
using WorkerMain = std::function<int(unsigned index)>;

// Call from a single-threaded process, after constructing `signals` with at least
// SIGTERM, SIGINT, SIGHUP and SIGCHLD. Returns the supervisor's exit code.
int run_supervisor(const SupervisorConfig& config, const WorkerMain& worker_main,
                   SignalWatcher& signals);

}  // namespace tcpms::workers
