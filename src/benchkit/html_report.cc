// render_html(): the self-contained HTML report. Everything is inline (CSS, SVG, the result
// JSON), nothing is fetched, and every piece of text from the result is escaped.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "benchkit/html.h"
#include "benchkit/report.h"
#include "benchkit/svg_chart.h"

namespace tcpms::bench {

namespace {

constexpr std::string_view kStyle = R"(
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 820px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.meta { color: #555; }
svg.chart { display: block; margin: 0.5em 0; }
)";

std::string utc_time(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  if (unix_ms <= 0 || gmtime_r(&t, &tm) == nullptr) return "unknown";
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string json_text(const nlohmann::json& j) {
  return j.is_string() ? j.get<std::string>()
                       : j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One series per field, x in seconds since the start. `whole_seconds`: a per-second count
// stops at the last whole second, since a last partial second would show as a drop to
// nearly zero that never happened (a gauge keeps every sample).
ChartSeries series_of(const TimeSeries& series, std::string_view field, std::string name,
                      std::size_t whole_seconds = SIZE_MAX) {
  ChartSeries out{std::move(name), {}};
  const auto col = series.column(field);
  for (std::size_t i = 0; i < col.size() && i < whole_seconds; ++i) {
    out.points.emplace_back(static_cast<double>(i), static_cast<double>(col[i]));
  }
  return out;
}

// Histograms worth a percentile curve: per-event latencies, the busiest first, at most four
// (more lines only hide each other). Per-loop spans (time_to_subscribe, publish_time, ...)
// hold one value per event loop and are left to the table.
constexpr std::uint64_t kMinChartSamples = 100;
constexpr std::size_t kMaxChartSeries = 4;

std::vector<std::string> charted_histograms(const RunResult& r) {
  std::vector<std::pair<std::uint64_t, std::string>> by_count;
  for (const auto& [name, h] : r.histograms)
    if (h.count() >= kMinChartSamples) by_count.emplace_back(h.count(), name);
  std::sort(by_count.begin(), by_count.end(), std::greater<>());
  std::vector<std::string> names;
  for (std::size_t i = 0; i < by_count.size() && i < kMaxChartSeries; ++i)
    names.push_back(by_count[i].second);
  return names;
}

ChartAxis seconds_axis() {
  return ChartAxis{"seconds since start", false, {}, [](double s) { return fmt::format("{:g}", s); }};
}

// x = log10(1 / (1 - p)): 90% is 1, 99% is 2, 99.9% is 3. The usual HdrHistogram plot.
std::string nines_label(double x) {
  const int nines = static_cast<int>(std::lround(x));
  if (nines <= 0) return "0%";
  if (nines == 1) return "90%";
  return "99" + (nines > 2 ? "." + std::string(static_cast<std::size_t>(nines - 2), '9') : "") +
         "%";
}

std::string latency_chart(const RunResult& r) {
  LineChart chart;
  chart.title = "Latency by percentile (log scales)";
  chart.y = ChartAxis{"latency", true, {}, [](double ns) { return format_duration_ns(ns); }};
  double x_max = 1;
  for (const std::string& name : charted_histograms(r)) {
    const Histogram& h = r.histograms.at(name);
    ChartSeries s{name, {}};
    for (const auto& [p, ns] : h.percentile_curve()) {
      // p = 100 (the max) has no finite x: put it where 1 - p is one count.
      const double x = p >= 100.0 ? std::log10(static_cast<double>(h.count()))
                                  : std::log10(100.0 / (100.0 - p));
      s.points.emplace_back(std::max(x, s.points.empty() ? 0.0 : s.points.back().first),
                            static_cast<double>(std::max<std::uint64_t>(ns, 1)));
      x_max = std::max(x_max, s.points.back().first);
    }
    chart.series.push_back(std::move(s));
  }
  chart.x = ChartAxis{"percentile", false, {}, nines_label};
  for (int k = 0; k <= static_cast<int>(std::ceil(x_max)); ++k) chart.x.ticks.push_back(k);
  return render_svg(chart);
}

void table_row(std::string& html, std::initializer_list<std::string> cells, bool header = false) {
  html += "<tr>";
  for (const auto& cell : cells) {
    html += header ? "<th>" : "<td>";
    html += html_escape(cell);
    html += header ? "</th>" : "</td>";
  }
  html += "</tr>\n";
}

// The result first: what was done and what it cost, then the charts, then the detail.
void headline(std::string& html, const RunResult& r) {
  html += "<h2>Result</h2>\n<table>\n";
  table_row(html, {"operations", fmt::format("{}", fmt::group_digits(r.counter(kCounterOps)))});
  if (r.duration_s() > 0) {
    table_row(html, {"operations per second (whole run)",
                     fmt::format("{:.0f}", static_cast<double>(r.counter(kCounterOps)) / r.duration_s())});
  }
  for (const char* rate : {"deliveries_per_s", "round_trips_per_s", "cycles_per_s", "connects_per_s",
                           "subscribes_per_s", "publishes_per_s"}) {
    if (auto it = r.counters.find(rate); it != r.counters.end())
      table_row(html, {rate, fmt::format("{}", fmt::group_digits(it->second))});
  }
  for (const char* loss : {"lost", "duplicates"}) {
    if (auto it = r.counters.find(loss); it != r.counters.end())
      table_row(html, {loss, fmt::format("{}", fmt::group_digits(it->second))});
  }
  table_row(html, {"failures", fmt::format("{}", fmt::group_digits(r.failure_total()))});
  for (const std::string& name : charted_histograms(r)) {
    const Histogram& h = r.histograms.at(name);
    table_row(html, {name + " latency p50 / p99 / max",
                     format_duration_ns(static_cast<double>(h.percentile(50))) + " / " +
                         format_duration_ns(static_cast<double>(h.percentile(99))) + " / " +
                         format_duration_ns(static_cast<double>(h.max()))});
  }
  if (r.server_before && r.server_after) {
    const auto cost = server_cost(r);
    if (cost.cpu_us_per_op) table_row(html, {"server CPU per operation", fmt::format("{:.2f} us", *cost.cpu_us_per_op)});
    if (cost.rss_bytes_per_connection)
      table_row(html, {"server memory per connection", fmt::format("{:.0f} bytes", *cost.rss_bytes_per_connection)});
    if (cost.pss_bytes_per_connection)
      table_row(html, {"server memory per connection, shared pages once (PSS)",
                       fmt::format("{:.0f} bytes", *cost.pss_bytes_per_connection)});
  }
  html += "</table>\n";
}

}  // namespace

std::string render_html(const RunResult& r) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>tcpms-bench: {0}</title>\n<style>{1}</style>\n</head>\n<body>\n"
      "<h1>tcpms-bench report: {0}</h1>\n"
      "<p class=\"meta\">started {2} &middot; {3:.1f} s &middot; {4} worker{5}</p>\n",
      html_escape(r.workload), kStyle, utc_time(r.started_unix_ms), r.duration_s(), r.workers,
      r.workers == 1 ? "" : "s");
  headline(html, r);

  // Seconds fully inside the run: the per-second counts stop there.
  const auto whole = static_cast<std::size_t>(std::floor(r.duration_s() + 1e-6));
  LineChart throughput{"Throughput", seconds_axis(), ChartAxis{"per second", false, {}, nullptr}, {}};
  throughput.series.push_back(series_of(r.series, kSeriesOps, "ops/s", whole));
  if (!r.series.column(kSeriesErrors).empty()) {
    throughput.series.push_back(series_of(r.series, kSeriesErrors, "errors/s", whole));
  }
  html += "<h2>Throughput over time</h2>\n" + render_svg(throughput);
  html += "<p class=\"meta\">Whole seconds only: the run's last partial second is left out.</p>\n";

  html += "<h2>Latency</h2>\n" + latency_chart(r);
  html += fmt::format("<p class=\"meta\">The curves: histograms with at least {} samples, at most {}, "
                      "the busiest first; the table has every one.</p>\n",
                      kMinChartSamples, kMaxChartSeries);
  html += "<table>\n";
  table_row(html, {"histogram", "count", "mean", "p50", "p90", "p99", "p99.9", "max"}, true);
  for (const auto& [name, h] : r.histograms) {
    table_row(html, {name, fmt::format("{}", fmt::group_digits(h.count())),
                     format_duration_ns(h.mean()),
                     format_duration_ns(static_cast<double>(h.percentile(kReportPercentiles[0]))),
                     format_duration_ns(static_cast<double>(h.percentile(kReportPercentiles[1]))),
                     format_duration_ns(static_cast<double>(h.percentile(kReportPercentiles[2]))),
                     format_duration_ns(static_cast<double>(h.percentile(kReportPercentiles[3]))),
                     format_duration_ns(static_cast<double>(h.max()))});
  }
  html += "</table>\n";

  LineChart connections{"Connections open", seconds_axis(), ChartAxis{"connections", false, {}, nullptr}, {}};
  connections.series.push_back(series_of(r.series, kSeriesConnectionsOpen, "connections open"));
  html += "<h2>Connections over time</h2>\n" + render_svg(connections);

  html += fmt::format("<h2>Failures: {}</h2>\n<table>\n", fmt::group_digits(r.failure_total()));
  table_row(html, {"cause", "count"}, true);
  for (const auto& [cause, n] : r.failures()) {
    table_row(html, {cause, fmt::format("{}", fmt::group_digits(n))});
  }
  html += "</table>\n";

  if (r.server_before && r.server_after) {
    const auto& before = *r.server_before;
    const auto& after = *r.server_after;
    const auto cost = server_cost(r);
    const auto opt = [](const std::optional<double>& v, const char* format_spec, bool shrank) {
      return v ? fmt::format(fmt::runtime(format_spec), *v)
               : std::string(shrank ? "n/a (it went down)" : "n/a");
    };
    html += fmt::format("<h2>Server (pid {}, {} processes)</h2>\n<table>\n", after.usage.pid,
                        after.usage.processes);
    table_row(html, {"", "before", "after", "per connection / op"}, true);
    table_row(html, {"resident memory (user space)",
                     format_bytes(static_cast<double>(before.usage.rss_bytes)),
                     format_bytes(static_cast<double>(after.usage.rss_bytes)),
                     opt(cost.rss_bytes_per_connection, "{:.0f} bytes/connection", cost.rss_shrank)});
    table_row(html, {"proportional memory (PSS: shared pages once)",
                     format_bytes(static_cast<double>(before.usage.pss_bytes)),
                     format_bytes(static_cast<double>(after.usage.pss_bytes)),
                     opt(cost.pss_bytes_per_connection, "{:.0f} bytes/connection", cost.pss_shrank)});
    table_row(html, {"kernel slab, unreclaimable (host)",
                     format_bytes(static_cast<double>(before.slab.unreclaimable_bytes)),
                     format_bytes(static_cast<double>(after.slab.unreclaimable_bytes)),
                     opt(cost.slab_bytes_per_connection, "{:.0f} bytes/connection", cost.slab_shrank)});
    table_row(html, {"cpu user+system",
                     format_duration_ns(1e3 * static_cast<double>(before.usage.cpu_user_us +
                                                                  before.usage.cpu_system_us)),
                     format_duration_ns(1e3 * static_cast<double>(after.usage.cpu_user_us +
                                                                  after.usage.cpu_system_us)),
                     opt(cost.cpu_us_per_op, "{:.2f} us/op", false)});
    table_row(html, {"listen drops (host)", fmt::format("{}", before.listen.listen_drops),
                     fmt::format("{}", after.listen.listen_drops), ""});
    html += "</table>\n";
  }

  html += "<h2>Counters</h2>\n<table>\n";
  table_row(html, {"counter", "value"}, true);
  for (const auto& [name, n] : r.counters) {
    if (!name.starts_with(kFailurePrefix)) table_row(html, {name, fmt::format("{}", fmt::group_digits(n))});
  }
  html += "</table>\n";

  if (!r.parameters.empty()) {
    html += "<h2>Parameters</h2>\n<table>\n";
    if (r.parameters.is_object()) {
      for (const auto& [key, value] : r.parameters.items()) table_row(html, {key, json_text(value)});
    } else {
      table_row(html, {"parameters", json_text(r.parameters)});
    }
    html += "</table>\n";
  }

  // The full result, for anyone who wants the numbers back out of the page. JSON can hold '<'
  // only inside strings, where \u003c means the same, so "</script>" cannot end the element.
  std::string data = nlohmann::json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string escaped;
  escaped.reserve(data.size());
  for (const char c : data) {
    if (c == '<') {
      escaped += "\\u003c";
    } else {
      escaped += c;
    }
  }
  html += "<script type=\"application/json\" id=\"tcpms-bench-result\">" + escaped +
          "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace tcpms::bench
