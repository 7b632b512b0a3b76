#include "benchkit/histogram.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tcpms::bench {
namespace {

// The exact order statistic for percentile p, with the histogram's rank rule: the
// ceil(p/100 * n)-th smallest value, at least the first.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, std::uint64_t rank) {
  return sorted[std::max<std::uint64_t>(rank, 1) - 1];
}

// Within the promised precision: 1/128 of the exact value (values under 256 ns are exact).
void expect_within_precision(std::uint64_t got, std::uint64_t exact) {
  const double tolerance = static_cast<double>(exact) / Histogram::kSubBucketHalf;
  EXPECT_LE(static_cast<double>(got > exact ? got - exact : exact - got), tolerance)
      << "got " << got << " exact " << exact;
}

std::vector<std::uint64_t> lognormal_latencies(std::size_t n, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(11.0, 1.5);  // median ~60 us, long tail
  std::vector<std::uint64_t> values(n);
  for (auto& v : values) v = static_cast<std::uint64_t>(dist(rng));
  return values;
}

TEST(Histogram, BucketsCoverRangeWithFixedPrecision) {
  for (const std::uint64_t v : std::initializer_list<std::uint64_t>{
           0, 1, 127, 255, 256, 257, 511, 512, 1000, 123456789, Histogram::kMaxValueNs}) {
    const auto i = Histogram::bucket_index(v);
    ASSERT_LT(i, Histogram::bucket_count());
    EXPECT_LE(Histogram::bucket_lowest(i), v);
    EXPECT_GE(Histogram::bucket_highest(i), v);
    const auto width = Histogram::bucket_highest(i) - Histogram::bucket_lowest(i) + 1;
    EXPECT_LE(width * Histogram::kSubBucketHalf, std::max<std::uint64_t>(v, 128)) << v;
  }
  // Contiguous: each bucket starts right after the previous one ends.
  for (std::size_t i = 1; i < Histogram::bucket_count(); ++i) {
    ASSERT_EQ(Histogram::bucket_lowest(i), Histogram::bucket_highest(i - 1) + 1) << i;
  }
  EXPECT_LT(Histogram::bucket_count(), 5000u);  // a few tens of KiB per histogram
}

TEST(Histogram, EmptyReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.percentile(99), 0u);
  EXPECT_DOUBLE_EQ(h.mean(), 0.0);
  EXPECT_TRUE(h.percentile_curve().empty());
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 50u);
  EXPECT_EQ(h.percentile(90), 90u);
  EXPECT_EQ(h.percentile(99), 99u);
  EXPECT_EQ(h.percentile(100), 100u);
  EXPECT_EQ(h.percentile(0), 1u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(Histogram, PercentilesMatchSortedValuesWithinPrecision) {
  auto values = lognormal_latencies(100'000, 7);
  Histogram h;
  for (const auto v : values) h.record(v);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  // 100,000 values: these percentiles fall on whole ranks.
  expect_within_precision(h.percentile(50), exact_percentile(values, 50'000));
  expect_within_precision(h.percentile(90), exact_percentile(values, 90'000));
  expect_within_precision(h.percentile(99), exact_percentile(values, 99'000));
  expect_within_precision(h.percentile(99.9), exact_percentile(values, 99'900));
  expect_within_precision(h.percentile(99.99), exact_percentile(values, 99'990));
  EXPECT_EQ(h.percentile(100), values.back());
  double sum = 0;
  for (const auto v : values) sum += static_cast<double>(v);
  EXPECT_NEAR(h.mean(), sum / static_cast<double>(values.size()), 1e-6 * h.mean());
}

TEST(Histogram, P999OfAThousandIsRank999) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v * 1000);
  expect_within_precision(h.percentile(99.9), 999'000);
  EXPECT_LT(h.percentile(99.9), 1'000'000u);
}

TEST(Histogram, ClampsValuesAboveOneHour) {
  Histogram h;
  h.record(Histogram::kMaxValueNs * 10);
  h.record(5);
  EXPECT_EQ(h.max(), Histogram::kMaxValueNs);
  EXPECT_EQ(h.saturated(), 1u);
  EXPECT_EQ(h.percentile(100), Histogram::kMaxValueNs);
}

TEST(Histogram, RecordNEqualsRepeatedRecord) {
  Histogram a, b;
  a.record_n(12345, 7);
  for (int i = 0; i < 7; ++i) b.record(12345);
  EXPECT_EQ(a, b);
  a.record_n(99, 0);  // a zero count is a no-op
  EXPECT_EQ(a, b);
}

TEST(Histogram, MergeEqualsRecordingEverything) {
  const auto values = lognormal_latencies(20'000, 11);
  Histogram all, first, second, empty;
  for (std::size_t i = 0; i < values.size(); ++i) {
    all.record(values[i]);
    (i % 3 == 0 ? first : second).record(values[i]);
  }
  Histogram merged;
  merged.merge(empty);
  merged.merge(first);
  merged.merge(second);
  merged.merge(empty);
  EXPECT_EQ(merged, all);
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.percentile(99.9), all.percentile(99.9));
}

TEST(Histogram, JsonRoundTripIsSparseAndExact) {
  const auto values = lognormal_latencies(5'000, 3);
  Histogram h;
  for (const auto v : values) h.record(v);
  h.record(Histogram::kMaxValueNs + 1);
  const nlohmann::json j = h;
  EXPECT_EQ(j.at("unit"), "ns");
  EXPECT_LT(j.at("buckets").size(), Histogram::bucket_count());  // sparse
  const auto back = nlohmann::json::parse(j.dump()).get<Histogram>();
  EXPECT_EQ(back, h);

  const Histogram empty;
  EXPECT_EQ(nlohmann::json(empty).get<Histogram>(), empty);
}

TEST(Histogram, FromJsonRejectsInconsistentInput) {
  Histogram h;
  h.record(1000);
  nlohmann::json j = h;
  auto bad_count = j;
  bad_count["count"] = 2;
  EXPECT_THROW(bad_count.get<Histogram>(), std::invalid_argument);
  auto bad_index = j;
  bad_index["buckets"] = {Histogram::bucket_count(), 1};
  EXPECT_THROW(bad_index.get<Histogram>(), std::invalid_argument);
  auto bad_bits = j;
  bad_bits["sub_bucket_bits"] = 7;
  EXPECT_THROW(bad_bits.get<Histogram>(), std::invalid_argument);
}

TEST(Histogram, PercentileCurveRisesToMax) {
  const auto values = lognormal_latencies(10'000, 5);
  Histogram h;
  for (const auto v : values) h.record(v);
  const auto curve = h.percentile_curve();
  ASSERT_GE(curve.size(), 40u);  // ten points per decade, four decades
  EXPECT_EQ(curve.front().first, 0.0);
  EXPECT_EQ(curve.back().first, 100.0);
  EXPECT_EQ(curve.back().second, h.max());
  for (std::size_t i = 1; i < curve.size(); ++i) {
    EXPECT_GE(curve[i].first, curve[i - 1].first);
    EXPECT_GE(curve[i].second, curve[i - 1].second);
  }
}

}  // namespace
}  // namespace tcpms::bench
