// The result of one bench run, and everything done with it: JSON (what a worker process hands
// to the parent), merge (the parent combining its workers), the human summary, and the
// self-contained HTML report.
//
// Threads: plain values; build one per worker, merge on one thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "benchkit/histogram.h"
#include "benchkit/proc_sampler.h"
#include "benchkit/time_series.h"

namespace tcpms::bench {

// Counter names the bench and the report agree on.
// Connections established and still open when server_after was sampled.
inline constexpr std::string_view kCounterConnections = "connections";
// Completed operations (requests answered, messages delivered).
inline constexpr std::string_view kCounterOps = "ops";
// Failures are counters named kFailurePrefix + cause ("fail.connect_refused").
inline constexpr std::string_view kFailurePrefix = "fail.";

struct RunResult {
  std::string workload;                                      // "echo", "connect", "mqtt-fanout"
  nlohmann::json parameters = nlohmann::json::object();      // the flags that shaped the run
  std::int64_t started_unix_ms = 0;
  std::int64_t ended_unix_ms = 0;
  int workers = 1;                                           // results merged into this one
  std::map<std::string, std::int64_t, std::less<>> counters;
  std::map<std::string, Histogram, std::less<>> histograms;  // latency in ns, by name
  TimeSeries series;                                         // per second, from started
  std::optional<ServerSample> server_before;                 // from --server-pid
  std::optional<ServerSample> server_after;

  void add(std::string_view counter, std::int64_t n = 1);
  void add_failure(std::string_view cause, std::int64_t n = 1);
  std::int64_t counter(std::string_view name) const;  // 0 when absent
  // cause -> count, from the kFailurePrefix counters.
  std::map<std::string, std::int64_t> failures() const;
  std::int64_t failure_total() const;
  // The named histogram, created empty on first use.
  Histogram& histogram(std::string_view name);
  double duration_s() const;

  // Combines a worker's result into this one: counters, histograms and series add up, the time
  // span widens, server samples are kept (the earliest before, the latest after; only the
  // parent normally takes them), and the workload and parameters of the first non-empty one
  // are kept.
  void merge(const RunResult& other);

  friend bool operator==(const RunResult&, const RunResult&) = default;
};

RunResult merge_results(std::span<const RunResult> results);

// What the server paid, from the before/after samples. Each field is set only when the
// samples and the counter it divides by are there.
struct ServerCost {
  std::optional<double> rss_bytes_per_connection;   // user space: VmRSS delta / connections
  // User space, each physical page once: Pss delta / connections. With worker processes this
  // is the figure to read: the VmRSS sum counts again, in every worker, each page of code
  // and data the workers share (proc_sampler.h).
  std::optional<double> pss_bytes_per_connection;
  // Kernel memory per connection: the host's unreclaimable slab (socket structures and
  // buffers live there; reclaimable caches such as dentries come and go with unrelated
  // activity) delta / connections. nullopt when it shrank: a warm host freed more than the
  // connections took, and the figure would be meaningless (negative).
  std::optional<double> slab_bytes_per_connection;
  bool slab_shrank = false;
  bool rss_shrank = false;  // the server's RSS went down: a warm server reused freed memory
  bool pss_shrank = false;
  std::optional<double> cpu_us_per_op;              // (user + system) delta / ops
  std::optional<double> cpu_cores;                  // CPU time delta / wall time delta
  std::optional<std::int64_t> listen_drops;         // ListenDrops delta (host-wide)
};
ServerCost server_cost(const RunResult& result);

// The percentiles the summary and the report show, besides max.
inline constexpr std::array<double, 4> kReportPercentiles = {50, 90, 99, 99.9};

// "812 ns", "12.3 us", "4.56 ms", "1.23 s".
std::string format_duration_ns(double ns);
// "512 B", "1.5 KiB", "12.0 MiB", "1.20 GiB".
std::string format_bytes(double bytes);

// Plain text for a terminal or a log: parameters, counters, failures by cause, latency
// percentiles (p50, p90, p99, p99.9, max) per histogram, server cost.
std::string format_summary(const RunResult& result);

// One HTML page with everything inline (CSS, SVG charts, the result JSON) and no URL, so it
// opens offline in any browser: connections over time, throughput over time, latency
// percentile curves on a log axis, and tables of the numbers.
std::string render_html(const RunResult& result);

void to_json(nlohmann::json& j, const RunResult& r);
void from_json(const nlohmann::json& j, RunResult& r);

}  // namespace tcpms::bench
