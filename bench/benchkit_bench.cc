// Google Benchmark of the latency histogram: record() runs once per bench operation, so it must
// stay a few nanoseconds and allocation-free.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "benchkit/histogram.h"

namespace {

using tcpms::bench::Histogram;

std::vector<std::uint64_t> latencies(std::size_t n) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(11.0, 1.5);  // median ~60 us, long tail
  std::vector<std::uint64_t> values(n);
  for (auto& v : values) v = static_cast<std::uint64_t>(dist(rng));
  return values;
}

void BM_HistogramRecord(benchmark::State& state) {
  const auto values = latencies(4096);
  Histogram h;
  std::size_t i = 0;
  for (auto _ : state) {
    h.record(values[i++ & 4095]);
  }
  benchmark::DoNotOptimize(h.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecord);

void BM_HistogramPercentile(benchmark::State& state) {
  Histogram h;
  for (const auto v : latencies(100'000)) h.record(v);
  for (auto _ : state) benchmark::DoNotOptimize(h.percentile(99.9));
}
BENCHMARK(BM_HistogramPercentile);

void BM_HistogramMerge(benchmark::State& state) {
  Histogram a, b;
  for (const auto v : latencies(100'000)) b.record(v);
  for (auto _ : state) {
    a.merge(b);
    benchmark::DoNotOptimize(a.count());
  }
}
BENCHMARK(BM_HistogramMerge);

}  // namespace

BENCHMARK_MAIN();
