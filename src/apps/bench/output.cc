#include "output.h"

#include <fstream>

#include <fmt/format.h>

namespace tcpms::benchapp {
namespace {

nlohmann::json layout_json(const RunLayout& l) {
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : l.sources.sources) {
    std::string text = s.to_string();
    sources.push_back(text.substr(0, text.rfind(':')));
  }
  return {{"processes", l.processes},
          {"threads_per_process", l.threads},
          {"nofile_per_process", l.nofile},
          {"targets", l.targets},
          {"source_addresses", sources},
          {"sources_automatic", l.sources.automatic},
          {"max_connections_per_pair", l.sources.per_pair_max},
          {"plan", l.sources.description}};
}

}  // namespace

std::string human_summary(const bench::RunResult& r, const RunLayout& l) {
  std::string out = fmt::format("layout  {} process{} x {} thread{} (nofile {}); {}\n", l.processes,
                                l.processes == 1 ? "" : "es", l.threads, l.threads == 1 ? "" : "s",
                                l.nofile, l.sources.description);
  if (!l.sources.warning.empty()) out += fmt::format("warning {}\n", l.sources.warning);
  out += bench::format_summary(r);
  if (l.netstat.is_object()) {
    const auto& b = l.netstat["before"];
    const auto& a = l.netstat["after"];
    out += fmt::format("kernel  ListenOverflows {} -> {}, ListenDrops {} -> {} (host-wide, /proc/net/netstat)\n",
                       b.value("listen_overflows", 0), a.value("listen_overflows", 0),
                       b.value("listen_drops", 0), a.value("listen_drops", 0));
  }
  return out;
}

nlohmann::json machine_json(const bench::RunResult& r, const RunLayout& l) {
  nlohmann::json j = r;
  j["layout"] = layout_json(l);
  j["netstat"] = l.netstat;
  j["failures"] = r.failures();
  j["failure_total"] = r.failure_total();
  const bench::ServerCost cost = bench::server_cost(r);
  nlohmann::json c = nlohmann::json::object();
  if (cost.rss_bytes_per_connection) c["rss_bytes_per_connection"] = *cost.rss_bytes_per_connection;
  if (cost.pss_bytes_per_connection) c["pss_bytes_per_connection"] = *cost.pss_bytes_per_connection;
  if (cost.slab_bytes_per_connection) c["slab_bytes_per_connection"] = *cost.slab_bytes_per_connection;
  if (cost.cpu_us_per_op) c["cpu_us_per_op"] = *cost.cpu_us_per_op;
  if (cost.cpu_cores) c["cpu_cores"] = *cost.cpu_cores;
  if (cost.listen_drops) c["listen_drops"] = *cost.listen_drops;
  j["server_cost"] = c;
  nlohmann::json lat = nlohmann::json::object();
  for (const auto& [name, h] : r.histograms) {
    nlohmann::json p = {{"count", h.count()}, {"min_ns", h.min()}, {"mean_ns", h.mean()}, {"max_ns", h.max()}};
    for (double q : bench::kReportPercentiles) p[fmt::format("p{}_ns", q)] = h.percentile(q);
    lat[name] = p;
  }
  j["latency"] = lat;
  return j;
}

std::string write_report(const std::string& path, const bench::RunResult& r) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return fmt::format("--report {}: cannot open for writing", path);
  f << bench::render_html(r);
  f.close();
  if (!f) return fmt::format("--report {}: write failed", path);
  return {};
}

}  // namespace tcpms::benchapp
