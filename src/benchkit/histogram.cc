#include "benchkit/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tcpms::bench {

namespace {
constexpr int kHalfBits = Histogram::kSubBucketBits - 1;  // log2(kSubBucketHalf)
}  // namespace

// Index = shift * 128 + (value >> shift), where shift keeps (value >> shift) in [128, 256) once
// value >= 256. Below 256 the shift is 0 and the index is the value itself.
std::size_t Histogram::bucket_index(std::uint64_t value_ns) noexcept {
  const int top_bit = 63 - std::countl_zero(value_ns | 1);
  const int shift = std::max(0, top_bit - kHalfBits);
  return (static_cast<std::size_t>(shift) << kHalfBits) + (value_ns >> shift);
}

std::uint64_t Histogram::bucket_lowest(std::size_t index) noexcept {
  if (index < kSubBucketCount) return index;
  const std::size_t shift = (index >> kHalfBits) - 1;
  const std::uint64_t sub = (index & (kSubBucketHalf - 1)) + kSubBucketHalf;
  return sub << shift;
}

std::uint64_t Histogram::bucket_highest(std::size_t index) noexcept {
  if (index < kSubBucketCount) return index;
  const std::size_t shift = (index >> kHalfBits) - 1;
  return bucket_lowest(index) + (std::uint64_t{1} << shift) - 1;
}

std::size_t Histogram::bucket_count() noexcept { return bucket_index(kMaxValueNs) + 1; }

Histogram::Histogram() : counts_(bucket_count(), 0) {}

void Histogram::record_n(std::uint64_t value_ns, std::uint64_t count) noexcept {
  if (count == 0) return;
  if (value_ns > kMaxValueNs) {
    value_ns = kMaxValueNs;
    saturated_ += count;
  }
  counts_[bucket_index(value_ns)] += count;
  if (count_ == 0 || value_ns < min_) min_ = value_ns;
  if (value_ns > max_) max_ = value_ns;
  count_ += count;
  sum_ += value_ns * count;
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
  saturated_ += other.saturated_;
}

void Histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = min_ = max_ = sum_ = saturated_ = 0;
}

double Histogram::mean() const noexcept {
  return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0;
}

std::uint64_t Histogram::percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // The tiny relative slack keeps 99.9% of 1000 at rank 999 despite 99.9/100 not being exact.
  const double exact_rank = p / 100.0 * static_cast<double>(count_);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(exact_rank - exact_rank * 1e-12)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(bucket_highest(i), min_, max_);
  }
  return max_;
}

std::vector<std::pair<double, std::uint64_t>> Histogram::percentile_curve() const {
  std::vector<std::pair<double, std::uint64_t>> points;
  if (count_ == 0) return points;
  points.emplace_back(0.0, min());
  // Ten points per decade of 1/(1-p): 90% is 1 decade, 99% is 2, 99.9% is 3...
  const double decades = std::log10(static_cast<double>(count_));
  for (int tenth = 1; tenth / 10.0 <= decades; ++tenth) {
    const double p = 100.0 * (1.0 - std::pow(10.0, -tenth / 10.0));
    points.emplace_back(p, percentile(p));
  }
  points.emplace_back(100.0, max());
  return points;
}

void to_json(nlohmann::json& j, const Histogram& h) {
  nlohmann::json buckets = nlohmann::json::array();
  for (std::size_t i = 0; i < h.counts_.size(); ++i) {
    if (h.counts_[i] == 0) continue;
    buckets.push_back(i);
    buckets.push_back(h.counts_[i]);
  }
  j = nlohmann::json{{"unit", "ns"},
                     {"sub_bucket_bits", Histogram::kSubBucketBits},
                     {"count", h.count_},
                     {"min", h.min()},
                     {"max", h.max_},
                     {"sum", h.sum_},
                     {"saturated", h.saturated_},
                     {"buckets", std::move(buckets)}};
}

void from_json(const nlohmann::json& j, Histogram& h) {
  if (j.at("unit").get<std::string>() != "ns" ||
      j.at("sub_bucket_bits").get<int>() != Histogram::kSubBucketBits) {
    throw std::invalid_argument("histogram JSON: unsupported unit or sub_bucket_bits");
  }
  Histogram out;
  const auto& buckets = j.at("buckets");
  if (buckets.size() % 2 != 0) throw std::invalid_argument("histogram JSON: odd bucket list");
  std::uint64_t total = 0;
  std::size_t next_index = 0;
  for (std::size_t k = 0; k < buckets.size(); k += 2) {
    const auto index = buckets[k].get<std::size_t>();
    if (index < next_index || index >= out.counts_.size()) {
      throw std::invalid_argument("histogram JSON: bucket index out of order or range");
    }
    out.counts_[index] = buckets[k + 1].get<std::uint64_t>();
    total += out.counts_[index];
    next_index = index + 1;
  }
  out.count_ = j.at("count").get<std::uint64_t>();
  if (total != out.count_) throw std::invalid_argument("histogram JSON: counts do not add up");
  out.min_ = j.at("min").get<std::uint64_t>();
  out.max_ = j.at("max").get<std::uint64_t>();
  out.sum_ = j.at("sum").get<std::uint64_t>();
  out.saturated_ = j.value("saturated", std::uint64_t{0});
  h = std::move(out);
}

}  // namespace tcpms::bench
