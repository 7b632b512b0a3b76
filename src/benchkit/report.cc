#include "benchkit/report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace tcpms::bench {

void RunResult::add(std::string_view counter, std::int64_t n) {
  const auto it = counters.find(counter);
  if (it != counters.end()) {
    it->second += n;
  } else {
    counters.emplace(std::string(counter), n);
  }
}

void RunResult::add_failure(std::string_view cause, std::int64_t n) {
  add(std::string(kFailurePrefix).append(cause), n);
}

std::int64_t RunResult::counter(std::string_view name) const {
  const auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

std::map<std::string, std::int64_t> RunResult::failures() const {
  std::map<std::string, std::int64_t> out;
  for (auto it = counters.lower_bound(kFailurePrefix);
       it != counters.end() && it->first.starts_with(kFailurePrefix); ++it) {
    out.emplace(it->first.substr(kFailurePrefix.size()), it->second);
  }
  return out;
}

std::int64_t RunResult::failure_total() const {
  std::int64_t total = 0;
  for (const auto& [cause, n] : failures()) total += n;
  return total;
}

Histogram& RunResult::histogram(std::string_view name) {
  auto it = histograms.find(name);
  if (it == histograms.end()) it = histograms.try_emplace(std::string(name)).first;
  return it->second;
}

double RunResult::duration_s() const {
  return ended_unix_ms > started_unix_ms ? (ended_unix_ms - started_unix_ms) / 1000.0 : 0.0;
}

void RunResult::merge(const RunResult& other) {
  if (workload.empty()) workload = other.workload;
  if (parameters.empty()) parameters = other.parameters;
  if (other.started_unix_ms != 0) {
    started_unix_ms = started_unix_ms == 0 ? other.started_unix_ms
                                           : std::min(started_unix_ms, other.started_unix_ms);
  }
  ended_unix_ms = std::max(ended_unix_ms, other.ended_unix_ms);
  workers += other.workers;
  for (const auto& [name, n] : other.counters) add(name, n);
  for (const auto& [name, h] : other.histograms) histogram(name).merge(h);
  series.merge(other.series);
  if (other.server_before &&
      (!server_before || other.server_before->time_unix_ms < server_before->time_unix_ms)) {
    server_before = other.server_before;
  }
  if (other.server_after &&
      (!server_after || other.server_after->time_unix_ms > server_after->time_unix_ms)) {
    server_after = other.server_after;
  }
}

RunResult merge_results(std::span<const RunResult> results) {
  if (results.empty()) return RunResult{};
  RunResult out = results.front();
  for (const auto& r : results.subspan(1)) out.merge(r);
  return out;
}

ServerCost server_cost(const RunResult& result) {
  ServerCost cost;
  if (!result.server_before || !result.server_after) return cost;
  const auto& before = *result.server_before;
  const auto& after = *result.server_after;
  auto connections = result.counter(kCounterConnections);
  if (connections == 0) {
    // No explicit count: the peak of the connections-open gauge.
    const auto col = result.series.column(kSeriesConnectionsOpen);
    if (!col.empty()) connections = *std::max_element(col.begin(), col.end());
  }
  const auto delta = [](std::uint64_t a, std::uint64_t b) {
    return static_cast<double>(b) - static_cast<double>(a);
  };
  if (connections > 0) {
    const double rss = delta(before.usage.rss_bytes, after.usage.rss_bytes);
    cost.rss_shrank = rss < 0;
    if (!cost.rss_shrank) cost.rss_bytes_per_connection = rss / static_cast<double>(connections);
    if (before.usage.pss_bytes && after.usage.pss_bytes) {
      const double pss = delta(before.usage.pss_bytes, after.usage.pss_bytes);
      cost.pss_shrank = pss < 0;
      if (!cost.pss_shrank) cost.pss_bytes_per_connection = pss / static_cast<double>(connections);
    }
    if (before.slab.slab_bytes && after.slab.slab_bytes) {
      const bool split = before.slab.unreclaimable_bytes && after.slab.unreclaimable_bytes;
      const double slab = split ? delta(before.slab.unreclaimable_bytes, after.slab.unreclaimable_bytes)
                                : delta(before.slab.slab_bytes, after.slab.slab_bytes);
      cost.slab_shrank = slab <= 0;
      if (!cost.slab_shrank) cost.slab_bytes_per_connection = slab / static_cast<double>(connections);
    }
  }
  const double cpu_us =
      delta(before.usage.cpu_user_us + before.usage.cpu_system_us,
            after.usage.cpu_user_us + after.usage.cpu_system_us);
  if (const auto ops = result.counter(kCounterOps); ops > 0) {
    cost.cpu_us_per_op = cpu_us / static_cast<double>(ops);
  }
  if (after.time_unix_ms > before.time_unix_ms) {
    cost.cpu_cores = cpu_us / 1000.0 / static_cast<double>(after.time_unix_ms - before.time_unix_ms);
  }
  cost.listen_drops = static_cast<std::int64_t>(after.listen.listen_drops) -
                      static_cast<std::int64_t>(before.listen.listen_drops);
  return cost;
}

std::string format_duration_ns(double ns) {
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.3g} us", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.3g} ms", ns / 1e6);
  return fmt::format("{:.3g} s", ns / 1e9);
}

std::string format_bytes(double bytes) {
  const double a = std::fabs(bytes);
  if (a >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
  if (a >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024));
  if (a >= 1024.0) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  return fmt::format("{:.0f} B", bytes);
}

std::string format_summary(const RunResult& r) {
  std::string out = fmt::format("workload {}  ({} worker{}, {:.1f} s)\n", r.workload, r.workers,
                                r.workers == 1 ? "" : "s", r.duration_s());
  if (!r.parameters.empty()) out += fmt::format("parameters {}\n", r.parameters.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));

  const double seconds = r.duration_s();
  for (const auto& [name, n] : r.counters) {
    if (name.starts_with(kFailurePrefix)) continue;
    out += fmt::format("  {:<24} {:>16}", name, fmt::group_digits(n));
    if (name == kCounterOps && seconds > 0) {
      out += fmt::format("  ({} /s)", fmt::group_digits(std::llround(n / seconds)));
    }
    out += '\n';
  }
  const auto failures = r.failures();
  out += fmt::format("failures {}\n", fmt::group_digits(r.failure_total()));
  for (const auto& [cause, n] : failures) {
    out += fmt::format("  {:<24} {:>16}\n", cause, fmt::group_digits(n));
  }

  if (!r.histograms.empty()) {
    out += fmt::format("latency {:<16} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "",
                       "count", "mean", "p50", "p90", "p99", "p99.9", "max");
    for (const auto& [name, h] : r.histograms) {
      out += fmt::format("  {:<22} {:>12} {:>10}", name, fmt::group_digits(h.count()),
                         format_duration_ns(h.mean()));
      for (const double p : kReportPercentiles) {
        out += fmt::format(" {:>10}", format_duration_ns(static_cast<double>(h.percentile(p))));
      }
      out += fmt::format(" {:>10}\n", format_duration_ns(static_cast<double>(h.max())));
    }
  }

  if (r.server_before && r.server_after) {
    const auto& before = *r.server_before;
    const auto& after = *r.server_after;
    const auto cost = server_cost(r);
    out += fmt::format("server pid {} ({} process{})\n", after.usage.pid, after.usage.processes,
                       after.usage.processes == 1 ? "" : "es");
    out += fmt::format("  rss {} -> {}", format_bytes(static_cast<double>(before.usage.rss_bytes)),
                       format_bytes(static_cast<double>(after.usage.rss_bytes)));
    if (cost.rss_bytes_per_connection) {
      out += fmt::format("  = {:.0f} bytes/connection", *cost.rss_bytes_per_connection);
    } else if (cost.rss_shrank) {
      out += "  (went down: a warm server reused memory it had freed; measure on a fresh one)";
    }
    out += '\n';
    if (cost.pss_bytes_per_connection) {
      out += fmt::format("  pss {} -> {}  = {:.0f} bytes/connection (shared pages counted once)\n",
                         format_bytes(static_cast<double>(before.usage.pss_bytes)),
                         format_bytes(static_cast<double>(after.usage.pss_bytes)),
                         *cost.pss_bytes_per_connection);
    }
    if (cost.slab_bytes_per_connection) {
      out += fmt::format("  kernel slab (unreclaimable) {} -> {}  = {:.0f} bytes/connection\n",
                         format_bytes(static_cast<double>(before.slab.unreclaimable_bytes)),
                         format_bytes(static_cast<double>(after.slab.unreclaimable_bytes)),
                         *cost.slab_bytes_per_connection);
    } else if (cost.slab_shrank) {
      out += fmt::format("  kernel slab (unreclaimable) {} -> {}: no figure, it did not grow (host-wide: "
                         "others freed more than these connections took; measure on a quiet host)\n",
                         format_bytes(static_cast<double>(before.slab.unreclaimable_bytes)),
                         format_bytes(static_cast<double>(after.slab.unreclaimable_bytes)));
    }
    const double cpu_s =
        (static_cast<double>(after.usage.cpu_user_us + after.usage.cpu_system_us) -
         static_cast<double>(before.usage.cpu_user_us + before.usage.cpu_system_us)) / 1e6;
    out += fmt::format("  cpu {:.2f} s", cpu_s);
    if (cost.cpu_cores) out += fmt::format(" ({:.2f} cores)", *cost.cpu_cores);
    if (cost.cpu_us_per_op) out += fmt::format("  = {:.2f} us/op", *cost.cpu_us_per_op);
    out += '\n';
    if (cost.listen_drops) out += fmt::format("  listen drops {}\n", *cost.listen_drops);
  }
  return out;
}

void to_json(nlohmann::json& j, const RunResult& r) {
  j = {{"workload", r.workload},
       {"parameters", r.parameters},
       {"started_unix_ms", r.started_unix_ms},
       {"ended_unix_ms", r.ended_unix_ms},
       {"workers", r.workers},
       {"counters", r.counters},
       {"histograms", r.histograms},
       {"series", r.series}};
  if (r.server_before) j["server_before"] = *r.server_before;
  if (r.server_after) j["server_after"] = *r.server_after;
}

void from_json(const nlohmann::json& j, RunResult& r) {
  RunResult out;
  out.workload = j.value("workload", std::string{});
  out.parameters = j.value("parameters", nlohmann::json::object());
  out.started_unix_ms = j.value("started_unix_ms", std::int64_t{0});
  out.ended_unix_ms = j.value("ended_unix_ms", std::int64_t{0});
  out.workers = j.value("workers", 1);
  if (j.contains("counters")) {
    for (const auto& [name, n] : j["counters"].items()) out.counters[name] = n.get<std::int64_t>();
  }
  if (j.contains("histograms")) {
    for (const auto& [name, h] : j["histograms"].items()) h.get_to(out.histogram(name));
  }
  if (j.contains("series")) j["series"].get_to(out.series);
  if (j.contains("server_before")) out.server_before = j["server_before"].get<ServerSample>();
  if (j.contains("server_after")) out.server_after = j["server_after"].get<ServerSample>();
  r = std::move(out);
}

}  // namespace tcpms::bench
