// Watches the server under test (--server-pid) and the host's listen-queue counters: a sample
// before the run, one per second during it (RSS and CPU as series), one after the work is done
// while the connections are still open. Runs in the parent (or the only process), never in a
// worker, so the samples are taken once.
//
// Threads: the main thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <nlohmann/json_fwd.hpp>

#include "benchkit/proc_sampler.h"
#include "benchkit/report.h"

namespace tcpms::benchapp {

class ServerMonitor {
 public:
  explicit ServerMonitor(int server_pid) : pid_(server_pid) {}

  // Before sample, netstat before. Returns an error message if --server-pid names no process.
  std::string begin();
  // Once per second: server_rss_bytes (gauge) and server_cpu_us (CPU time in that second).
  void tick(size_t second);
  // After sample, netstat after; writes the samples, series and kernel.* deltas into `r`.
  void end(bench::RunResult& r);

  // "netstat": {"before": {...}, "after": {...}} for the JSON output, null if unreadable.
  nlohmann::json netstat_json() const;
  std::optional<bench::ListenDrops> netstat_before() const { return listen_before_; }
  std::optional<bench::ListenDrops> netstat_after() const { return listen_after_; }

 private:
  int pid_;
  bench::ProcSampler sampler_;
  std::optional<bench::ServerSample> before_;
  std::optional<bench::ListenDrops> listen_before_, listen_after_;
  bench::TimeSeries series_;
  uint64_t last_cpu_us_ = 0;
};

}  // namespace tcpms::benchapp
