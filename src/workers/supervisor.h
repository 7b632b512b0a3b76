// Supervisor: runs a server as P worker processes that share its listening ports through
// SO_REUSEPORT, so one server can hold more connections than one process's descriptor limit
// (RLIMIT_NOFILE), as container platforms force.
//
// The supervisor never starts threads or loops: it forks the workers (which are ordinary
// tcpms servers with disjoint loop-index ranges), restarts one that dies while the others
// keep their connections, forwards SIGTERM/SIGINT/SIGHUP, and exits 0 once every worker has
// drained and exited 0. A worker that exits with one of `fatal_exit_codes` stops the server.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tcpms/signal_watcher.h"
#include "tcpms/unique_fd.h"

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
  // A worker that exits with this code is done for good, not restarted: it handed its
  // clients over to its successor in an upgrade (docs/upgrade.md, "Worker processes"), or it
  // was started for an upgrade that did not happen. Once every slot is retired the
  // supervisor exits 0.
  int retired_exit_code = 75;
};

// What a worker process starts with besides its index.
struct WorkerChannels {
  // A Unix stream socket to the supervisor, one per start of a slot: on an upgrade the
  // supervisor sends the worker its handover channel here (and SIGUSR2), and the worker
  // answers how its handover ended.
  UniqueFd control;
  // Set only for a supervisor started by an upgrade, on each slot's first start: the channel
  // to the old worker of the same index, which hands its clients over on it.
  UniqueFd handover;
};

// The body of worker `index`; its return value is the worker's exit code. It runs in a fresh
// child process that has inherited `signals` (a signalfd reads the child's own signals).
using WorkerMain = std::function<int(unsigned index, WorkerChannels channels)>;

// What the supervisor does for an upgrade; the workers' side is the server's (apps/server).
struct SupervisorUpgrade {
  // SIGUSR2: hand every worker over to a new supervisor's workers. Gets each slot's pid and
  // control socket (0 and -1 for a slot not running) and returns once the handover ended
  // either way; meanwhile signals wait in the signalfd. Unset: SIGUSR2 is refused (logged).
  std::function<void(std::span<const pid_t> pids, std::span<const int> controls)> on_sigusr2;
  // A SIGUSR2 refused before on_sigusr2 (logged too): why, for whoever asked for it.
  std::function<void(const std::string& why)> refused;
  // For a supervisor started by an upgrade: each slot's first start gets its channel here.
  std::vector<UniqueFd> first_handover_channels;
  // Runs once every worker has started for the first time (a new supervisor waits there for
  // the old one's verdict, then writes the pid file).
  std::function<void()> after_first_start;
};

// Call from a single-threaded process, after constructing `signals` with at least
// SIGTERM, SIGINT, SIGHUP and SIGCHLD. Returns the supervisor's exit code.
int run_supervisor(const SupervisorConfig& config, const WorkerMain& worker_main,
                   SignalWatcher& signals, SupervisorUpgrade upgrade = {});

}  // namespace tcpms::workers
