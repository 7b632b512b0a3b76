#include "broker/topic_summary.h"

#include <functional>

namespace tcpms::broker {
namespace {

inline size_t mix(size_t h) noexcept {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

inline bool is_wildcard(std::string_view level) noexcept { return level == "+" || level == "#"; }

}  // namespace

size_t TopicSummary::bit_a(std::string_view l1) noexcept {
  return mix(std::hash<std::string_view>{}(l1)) % kBits;
}

size_t TopicSummary::bit_b(std::string_view l1, std::string_view l2) noexcept {
  size_t h = std::hash<std::string_view>{}(l1) * 0x9E3779B97F4A7C15ull;
  return mix(h ^ std::hash<std::string_view>{}(l2) ^ 0x5bd1e995) % kBits;
}

void TopicSummary::change(std::string_view l1, bool has_l2, std::string_view l2, int delta) {
  if (is_wildcard(l1)) {
    root_wildcards_.store(root_wildcards_.load(std::memory_order_relaxed) + delta,
                          std::memory_order_relaxed);
    return;
  }
  const size_t bit = (!has_l2 || is_wildcard(l2)) ? bit_a(l1) : bit_b(l1, l2);
  uint32_t& n = counts_[bit];
  n += delta;
  if (n == (delta > 0 ? 1u : 0u)) {
    auto& word = bits_[bit / 64];
    const uint64_t mask = uint64_t{1} << (bit % 64);
    const uint64_t w = word.load(std::memory_order_relaxed);
    word.store(delta > 0 ? (w | mask) : (w & ~mask), std::memory_order_relaxed);
  }
}

bool TopicSummary::may_match(std::string_view topic) const noexcept {
  const size_t slash = topic.find('/');
  const std::string_view t1 = topic.substr(0, slash);
  if (root_wildcards_.load(std::memory_order_relaxed) != 0 && !topic.starts_with('$')) return true;
  if (test(bit_a(t1))) return true;
  if (slash == std::string_view::npos) return false;
  const size_t slash2 = topic.find('/', slash + 1);
  const std::string_view t2 = topic.substr(slash + 1, slash2 == std::string_view::npos
                                                          ? std::string_view::npos
                                                          : slash2 - slash - 1);
  return test(bit_b(t1, t2));
}

}  // namespace tcpms::broker
