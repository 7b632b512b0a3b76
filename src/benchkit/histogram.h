// Log-linear latency histogram in nanoseconds (HdrHistogram's bucket layout, fixed precision).
//
// Values 0..255 ns have one bucket each; above that every power of two is cut into 128 equal
// buckets, so a recorded value is known to within 1/128 (0.8%) of itself. The range is
// 0 ns .. 1 hour; larger values are clamped to 1 hour (and counted in saturated()). The counts
// live in one vector sized at construction (~36 KiB), so record() is O(1) and never allocates.
//
// Open-loop use (coordinated omission): record `completion_time - intended_send_time`, where
// the intended time comes from the schedule, not from when the send actually happened. A stalled
// server then shows up as the latency every scheduled request would have seen.
//
// Threads: not synchronised. Keep one per thread (or worker process) and merge() at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tcpms::bench {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 8;                           // 256 linear buckets
  static constexpr std::uint64_t kSubBucketCount = 1u << kSubBucketBits;
  static constexpr std::uint64_t kSubBucketHalf = kSubBucketCount / 2;  // 128: the precision
  static constexpr std::uint64_t kMaxValueNs = 3'600'000'000'000ull;  // 1 hour

  Histogram();

  // Counts `value_ns` once (or `count` times). Values above kMaxValueNs are clamped.
  void record(std::uint64_t value_ns) noexcept { record_n(value_ns, 1); }
  void record_n(std::uint64_t value_ns, std::uint64_t count) noexcept;

  // Adds every count of `other`, as if its values had been recorded here.
  void merge(const Histogram& other);
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  // Exact smallest/largest recorded values (after clamping); 0 when empty.
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;
  // Values that were larger than kMaxValueNs and clamped.
  std::uint64_t saturated() const noexcept { return saturated_; }

  // The value at percentile `p` in [0, 100] (99.9 is p99.9): the highest value equivalent to the
  // bucket holding the ceil(p/100 * count)-th smallest value, clamped to [min, max]. So it is
  // within 1/128 of the exact order statistic, and percentile(100) == max(). 0 when empty.
  std::uint64_t percentile(double p) const noexcept;

  // Points (percentile, value_ns) for a percentile curve on a log "nines" axis: 0, then ten
  // points per decade of 1/(1-p) up to the resolution the count allows, then 100 (the max).
  std::vector<std::pair<double, std::uint64_t>> percentile_curve() const;

  // Bucket arithmetic, exposed for tests and for the JSON form.
  static std::size_t bucket_index(std::uint64_t value_ns) noexcept;
  static std::uint64_t bucket_lowest(std::size_t index) noexcept;
  static std::uint64_t bucket_highest(std::size_t index) noexcept;
  static std::size_t bucket_count() noexcept;

  friend bool operator==(const Histogram&, const Histogram&) = default;

 private:
  friend void to_json(nlohmann::json& j, const Histogram& h);
  friend void from_json(const nlohmann::json& j, Histogram& h);

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t sum_ = 0;  // ns; overflows only past ~5 million hour-long values
  std::uint64_t saturated_ = 0;
};

// Compact JSON: {"unit":"ns","sub_bucket_bits":8,"count","min","max","sum","saturated",
// "buckets":[index0,count0,index1,count1,...]} with only the non-empty buckets, indices rising.
// from_json throws nlohmann::json::exception (or std::invalid_argument) on a malformed input.
void to_json(nlohmann::json& j, const Histogram& h);
void from_json(const nlohmann::json& j, Histogram& h);

}  // namespace tcpms::bench
