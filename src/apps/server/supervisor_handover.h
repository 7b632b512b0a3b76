// The upgrade handover of a server running as a supervisor and P worker processes
// (docs/upgrade.md, "Worker processes"): the supervisors' part. The workers' part is the
// one-process handover (handover_giver.h, handover_taker.h), run by each pair of workers of
// the same index over a channel the supervisors set up:
//
//   old supervisor                      new supervisor (upgrade.binary, same command line)
//   start_successor ------------------> Hello
//   Welcome {version, pid, P, protocol}  checks P and the protocol (Refuse: nothing changes)
//   Listeners: the ports it reserves --> adopts them (the ports stay held throughout)
//                                        makes P socket pairs, forks worker i with one end
//   <------------------------------------ Workers {epoch, 0..P-1}: the other ends
//   forwards end i to old worker i (its control socket, then SIGUSR2); each pair hands over
//   <- each old worker: Done{n} or Refuse{why} on its control socket
//   Done {workers that moved} ---------> all P: writes the pid file
//
// Thread rules: the supervisors' main threads (single-threaded processes).
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "listeners.h"
#include "net/handover_channel.h"
#include "tcpms/endpoint.h"
#include "tcpms/unique_fd.h"

namespace tcpms::app {

// The old supervisor's side.
struct SupervisorGiverConfig {
  std::string binary;             // the successor's program
  std::vector<std::string> argv;  // its command line
  std::string protocol;
  unsigned processes = 0;
  uint32_t timeout_ms = 60000;
  // The ports this supervisor keeps reserved for its workers, and their addresses: the
  // client listeners' in order, then the admin API's, if it has one.
  std::vector<int> reservations;
  std::vector<std::string> addresses;
};
// SIGUSR2 in the supervisor: returns once every worker answered (or the handover stopped
// before any could start); logs the outcome and returns why not every worker moved (empty:
// all did). `pids` and `controls` by worker index.
std::string hand_workers_over(const SupervisorGiverConfig& config, std::span<const pid_t> pids,
                              std::span<const int> controls);

// The new supervisor's side, before it forks its workers: Hello, Welcome (refused if the
// process count or the protocol differ), the reserved ports (their addresses replace the
// configured ones, so a configured port 0 means the port the old server got), then one
// channel per worker. Returns "" or why not (logged by the caller; the old server serves on).
struct SupervisorTaking {
  std::vector<UniqueFd> reservations;        // the ports, held from now on
  std::vector<UniqueFd> worker_channels;     // by worker index, for each worker's first start
  pid_t old_pid = 0;
};
std::string take_supervisor(net::HandoverChannel& channel, const std::string& protocol,
                            unsigned processes, uint32_t timeout_ms,
                            std::vector<Listener>& listeners, std::optional<Endpoint>& admin_at,
                            SupervisorTaking& out);
// Once its workers run: waits for the old supervisor's verdict. True when every worker moved.
bool wait_for_supervisor_verdict(net::HandoverChannel& channel, unsigned processes,
                                 pid_t old_pid);

// A worker's side: on SIGUSR2, its channel to its successor from the supervisor (within
// `timeout_ms`), and the handover's epoch. Null and `error` when there is none.
std::optional<UniqueFd> worker_channel_from_supervisor(net::HandoverChannel& control,
                                                       uint32_t& epoch, std::string& error);
// A worker whose successor took everything, before Done: tells its supervisor and waits for
// the word. "" commits (every worker got this far); otherwise why the handover stops, and the
// worker takes everything back (handover version 4 on). One worker that fails thus stops all
// of them, so the two generations never split the clients between two meshes.
std::string await_commit(net::HandoverChannel& control);
// A worker tells its supervisor how its handover ended.
void report_to_supervisor(net::HandoverChannel& control, bool completed, size_t handed,
                          const std::string& error);

}  // namespace tcpms::app
