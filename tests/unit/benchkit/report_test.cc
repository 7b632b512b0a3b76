#include "benchkit/report.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tcpms::bench {
namespace {

ServerSample server_at(std::int64_t time_ms, std::uint64_t rss, std::uint64_t cpu_us,
                       std::uint64_t slab, std::uint64_t drops) {
  ServerSample s;
  s.time_unix_ms = time_ms;
  s.usage = ProcessUsage{4242, 3, rss, cpu_us / 2, cpu_us / 2, rss / 2};
  s.listen = ListenDrops{drops, drops};
  s.slab = SlabMemory{slab, slab / 4, slab - slab / 4};
  return s;
}

// One worker's result: `connections` held, 100 ops per connection, a latency per op.
RunResult worker_result(std::int64_t started_ms, std::int64_t connections, std::uint64_t base_ns) {
  RunResult r;
  r.workload = "echo";
  r.parameters = {{"connections", connections}, {"rate", 1000}, {"size", 64}};
  r.started_unix_ms = started_ms;
  r.ended_unix_ms = started_ms + 10'000;
  r.add(kCounterConnections, connections);
  r.add(kCounterOps, connections * 100);
  r.add_failure("connect_refused", 2);
  r.add_failure("timeout");
  for (std::int64_t i = 0; i < connections * 100; ++i) {
    r.histogram("rtt").record(base_ns + static_cast<std::uint64_t>(i % 1000) * 1000);
  }
  for (std::size_t t = 0; t < 10; ++t) {
    r.series.set(kSeriesConnectionsOpen, t, connections * static_cast<std::int64_t>(t + 1) / 10);
    r.series.set(kSeriesOps, t, connections * 10);
  }
  return r;
}

TEST(RunResult, CountersAndFailuresByCause) {
  const auto r = worker_result(1'000, 10, 50'000);
  EXPECT_EQ(r.counter(kCounterOps), 1000);
  EXPECT_EQ(r.counter("missing"), 0);
  EXPECT_EQ(r.failures(), (std::map<std::string, std::int64_t>{{"connect_refused", 2},
                                                                {"timeout", 1}}));
  EXPECT_EQ(r.failure_total(), 3);
  EXPECT_DOUBLE_EQ(r.duration_s(), 10.0);
}

TEST(RunResult, JsonRoundTrip) {
  auto r = worker_result(1'700'000'000'000, 10, 50'000);
  r.server_before = server_at(1'700'000'000'000, 1 << 20, 1000, 1 << 30, 5);
  r.server_after = server_at(1'700'000'010'000, 5 << 20, 900'000, 2 << 20, 7);
  const auto text = nlohmann::json(r).dump();
  EXPECT_EQ(nlohmann::json::parse(text).get<RunResult>(), r);

  const RunResult empty;
  EXPECT_EQ(nlohmann::json(empty).get<RunResult>(), empty);
}

TEST(RunResult, MergeOfWorkersAddsUp) {
  std::vector<RunResult> workers{worker_result(1'000, 10, 50'000),
                                 worker_result(900, 20, 80'000),
                                 worker_result(1'100, 30, 20'000)};
  workers[0].server_before = server_at(800, 1 << 20, 0, 0, 0);
  workers[0].server_after = server_at(11'200, 2 << 20, 0, 0, 0);
  // Through JSON, as the parent receives them from worker processes.
  std::vector<RunResult> received;
  for (const auto& w : workers) received.push_back(nlohmann::json::parse(nlohmann::json(w).dump()).get<RunResult>());
  const auto merged = merge_results(received);

  EXPECT_EQ(merged.workload, "echo");
  EXPECT_EQ(merged.workers, 3);
  EXPECT_EQ(merged.started_unix_ms, 900);
  EXPECT_EQ(merged.ended_unix_ms, 11'100);
  EXPECT_EQ(merged.counter(kCounterConnections), 60);
  EXPECT_EQ(merged.counter(kCounterOps), 6000);
  EXPECT_EQ(merged.failures().at("connect_refused"), 6);
  EXPECT_EQ(merged.series.at(kSeriesConnectionsOpen, 9), 60);
  EXPECT_EQ(merged.series.at(kSeriesOps, 0), 600);
  ASSERT_TRUE(merged.server_before);
  EXPECT_EQ(merged.server_before->time_unix_ms, 800);

  Histogram all;
  for (const auto& w : workers) all.merge(w.histograms.at("rtt"));
  EXPECT_EQ(merged.histograms.at("rtt"), all);
  EXPECT_EQ(merged.histograms.at("rtt").count(), 6000u);
  EXPECT_TRUE(merge_results({}).counters.empty());
}

TEST(RunResult, ServerCostPerConnectionAndPerOp) {
  auto r = worker_result(0, 1000, 10'000);  // 1000 connections, 100,000 ops
  r.server_before = server_at(1'000, 10 << 20, 1'000'000, 100 << 20, 3);
  r.server_after = server_at(11'000, (10 << 20) + 1000 * 800, 3'000'000, (100 << 20) + 1000 * 2000, 5);
  const auto cost = server_cost(r);
  ASSERT_TRUE(cost.rss_bytes_per_connection);
  EXPECT_DOUBLE_EQ(*cost.rss_bytes_per_connection, 800.0);
  ASSERT_TRUE(cost.pss_bytes_per_connection);
  EXPECT_DOUBLE_EQ(*cost.pss_bytes_per_connection, 400.0);  // the fixture's PSS is half its RSS
  ASSERT_TRUE(cost.slab_bytes_per_connection);
  // The unreclaimable part (3/4 of the fixture's slab), where socket memory lives.
  EXPECT_DOUBLE_EQ(*cost.slab_bytes_per_connection, 1500.0);
  ASSERT_TRUE(cost.cpu_us_per_op);
  EXPECT_DOUBLE_EQ(*cost.cpu_us_per_op, 20.0);  // 2 s of CPU over 100,000 ops
  ASSERT_TRUE(cost.cpu_cores);
  EXPECT_DOUBLE_EQ(*cost.cpu_cores, 0.2);  // 2 s of CPU over 10 s
  EXPECT_EQ(cost.listen_drops, 2);

  RunResult no_samples;
  EXPECT_FALSE(server_cost(no_samples).rss_bytes_per_connection);
}

TEST(RunResult, ShrinkingMemoryGivesNoFigureRatherThanANegativeOne) {
  // A warm host: the slab shrank and the server's RSS went down during the run.
  auto r = worker_result(0, 1000, 10'000);
  r.server_before = server_at(1'000, 20 << 20, 1'000'000, 200 << 20, 3);
  r.server_after = server_at(11'000, 10 << 20, 3'000'000, 100 << 20, 3);
  const auto cost = server_cost(r);
  EXPECT_FALSE(cost.slab_bytes_per_connection);
  EXPECT_TRUE(cost.slab_shrank);
  EXPECT_FALSE(cost.rss_bytes_per_connection);
  EXPECT_TRUE(cost.rss_shrank);
  EXPECT_FALSE(cost.pss_bytes_per_connection);
  EXPECT_TRUE(cost.pss_shrank);
  const auto text = format_summary(r);
  EXPECT_EQ(text.find("bytes/connection"), std::string::npos) << text;
  EXPECT_NE(text.find("no figure, it did not grow"), std::string::npos) << text;
  EXPECT_EQ(text.find(" -"), text.find(" -> "));  // no negative number anywhere
}

TEST(RunResult, ServerCostFallsBackToPeakConnectionsGauge) {
  auto r = worker_result(0, 1000, 10'000);
  r.counters.erase(std::string(kCounterConnections));
  r.server_before = server_at(1'000, 0, 0, 0, 0);
  r.server_after = server_at(2'000, 1000 * 500, 0, 0, 0);
  EXPECT_DOUBLE_EQ(*server_cost(r).rss_bytes_per_connection, 500.0);  // peak gauge is 1000
}

TEST(Report, FormatsDurations) {
  EXPECT_EQ(format_duration_ns(812), "812 ns");
  EXPECT_EQ(format_duration_ns(12'300), "12.3 us");
  EXPECT_EQ(format_duration_ns(4'560'000), "4.56 ms");
  EXPECT_EQ(format_duration_ns(1.23e9), "1.23 s");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(3 << 20), "3.0 MiB");
}

TEST(Report, SummaryHasPercentilesFailuresAndServerCost) {
  auto r = worker_result(0, 1000, 10'000);
  r.server_before = server_at(1'000, 10 << 20, 1'000'000, 100 << 20, 3);
  r.server_after = server_at(11'000, (10 << 20) + 1000 * 800, 3'000'000, 100 << 20, 3);
  const auto text = format_summary(r);
  for (const char* needle : {"workload echo", "p50", "p90", "p99", "p99.9", "max", "rtt",
                             "connect_refused", "100,000", "(10,000 /s)", "800 bytes/connection",
                             "20.00 us/op"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
}

TEST(Report, HtmlIsSelfContainedWithCharts) {
  auto r = worker_result(1'700'000'000'000, 1000, 10'000);
  for (int i = 0; i < 200; ++i) r.histogram("connect").record(300'000 + i);
  r.server_before = server_at(1'000, 10 << 20, 1'000'000, 100 << 20, 3);
  r.server_after = server_at(11'000, (10 << 20) + 1000 * 800, 3'000'000, 100 << 20, 3);
  const auto html = render_html(r);
  // The result comes first, the parameters last.
  ASSERT_NE(html.find("<h2>Result</h2>"), std::string::npos);
  EXPECT_LT(html.find("<h2>Result</h2>"), html.find("Throughput over time"));
  EXPECT_LT(html.find("<h2>Counters</h2>"), html.find("<h2>Parameters</h2>"));
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
  EXPECT_TRUE(html.ends_with("</html>\n"));
  EXPECT_NE(html.find("Connections over time"), std::string::npos);
  EXPECT_NE(html.find("Throughput over time"), std::string::npos);
  EXPECT_NE(html.find("Latency by percentile"), std::string::npos);
  EXPECT_NE(html.find("99.9%"), std::string::npos);  // a tick on the nines axis
  // Three charts, each with at least one drawn line.
  std::size_t svgs = 0, lines = 0;
  for (auto pos = html.find("<svg"); pos != std::string::npos; pos = html.find("<svg", pos + 1)) ++svgs;
  for (auto pos = html.find("<polyline"); pos != std::string::npos; pos = html.find("<polyline", pos + 1)) ++lines;
  EXPECT_EQ(svgs, 3u);
  EXPECT_GE(lines, 4u);  // connections, ops, two latency curves
  EXPECT_NE(html.find("800 bytes/connection"), std::string::npos);
  // Nothing to fetch: no URL of any scheme, no external script or stylesheet.
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  // The result JSON is embedded and parses back to the same result.
  const std::string open = "<script type=\"application/json\" id=\"tcpms-bench-result\">";
  const auto begin = html.find(open);
  ASSERT_NE(begin, std::string::npos);
  const auto end = html.find("</script>", begin);
  EXPECT_EQ(nlohmann::json::parse(html.substr(begin + open.size(), end - begin - open.size()))
                .get<RunResult>(),
            r);
}

TEST(Report, HtmlChartsLeaveOutThePartialLastSecondAndSpans) {
  auto r = worker_result(1'700'000'000'000, 1000, 10'000);
  r.ended_unix_ms = r.started_unix_ms + 10'400;  // 10.4 s: second 10 is partial
  r.series.set(kSeriesOps, 10, 7);               // ... and looks like a collapse
  // Nine histograms: four per-event ones with many samples, five per-loop spans.
  for (const char* name : {"a_latency", "b_latency", "c_latency", "d_latency"})
    for (int i = 0; i < 150; ++i) r.histogram(name).record(1000 + i);
  for (const char* span : {"time_to_subscribe", "publish_time", "deliver_time", "barrier_wait", "send_time"})
    r.histogram(span).record(5'000'000'000);
  const auto html = render_html(r);
  // The throughput line has ten points (seconds 0..9), not eleven.
  const auto chart = html.find("Throughput over time");
  const auto poly = html.find("<polyline", chart);
  const auto points = html.substr(poly, html.find("/>", poly) - poly);
  EXPECT_EQ(std::count(points.begin(), points.end(), ','), 10) << points;
  // The latency chart: four curves (rtt and three of a..d), no span.
  const auto lat = html.find("Latency by percentile");
  const auto lat_end = html.find("</svg>", lat);
  size_t curves = 0;
  for (auto pos = html.find("<polyline", lat); pos != std::string::npos && pos < lat_end;
       pos = html.find("<polyline", pos + 1))
    ++curves;
  EXPECT_EQ(curves, 4u);
  EXPECT_EQ(html.substr(lat, lat_end - lat).find("publish_time"), std::string::npos);
  // The table still lists every histogram.
  EXPECT_NE(html.find("<td>publish_time</td>"), std::string::npos);
}

TEST(Report, HtmlEscapesEveryText) {
  RunResult r;
  r.workload = "<script>alert('x')</script>";
  r.parameters = {{"<b>key</b>", "a&b \"quoted\""}};
  r.add_failure("<img onerror=x>");
  r.histogram("</svg><i>").record(1000);
  r.series.set(kSeriesOps, 0, 1);
  const auto html = render_html(r);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_EQ(html.find("</svg><i>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("a&amp;b &quot;quoted&quot;"), std::string::npos);
  // The embedded JSON cannot close its own script element.
  EXPECT_EQ(html.find("</script>"), html.rfind("</script>"));
}

TEST(Report, HtmlOfAnEmptyResultStillRenders) {
  const auto html = render_html(RunResult{});
  EXPECT_NE(html.find("no data"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
}

}  // namespace
}  // namespace tcpms::bench
