#include "reach_plan.h"

#include <algorithm>
#include <charconv>
#include <random>
#include <unordered_set>

#include <fmt/format.h>

namespace tcpms::benchapp {

std::string reach_topic(std::string_view client_id) { return fmt::format("reach/{}", client_id); }

std::string reach_push_topic(std::string_view client_id) { return fmt::format("reach/{}/push", client_id); }

std::vector<uint64_t> choose_push_targets(uint64_t seed, uint64_t n, uint64_t k) {
  k = std::min(k, n);
  std::vector<uint64_t> out;
  out.reserve(k);
  if (k == n) {
    for (uint64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  // Floyd: for j in [n - k, n), take a random t in [0, j]; if already taken, take j instead.
  // Each K-subset is equally likely.
  std::mt19937_64 rng(seed);
  std::unordered_set<uint64_t> taken;
  taken.reserve(k * 2);
  for (uint64_t j = n - k; j < n; ++j) {
    const uint64_t t = std::uniform_int_distribution<uint64_t>(0, j)(rng);
    const uint64_t pick = taken.contains(t) ? j : t;
    taken.insert(pick);
    out.push_back(pick);
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t count_in_range(const std::vector<uint64_t>& sorted, uint64_t first, uint64_t count) {
  auto lo = std::lower_bound(sorted.begin(), sorted.end(), first);
  auto hi = std::lower_bound(lo, sorted.end(), first + count);
  return static_cast<uint64_t>(hi - lo);
}

std::string format_report(const ReachReport& r) {
  return fmt::format("{} {} {} {}", r.clients, r.delivered, r.first_publish_ns, r.last_delivery_ns);
}

std::optional<ReachReport> parse_report(std::string_view text) {
  ReachReport r;
  uint64_t* fields[] = {&r.clients, &r.delivered, &r.first_publish_ns, &r.last_delivery_ns};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (size_t f = 0; f < std::size(fields); ++f) {
    if (f > 0) {
      if (p == end || *p != ' ') return std::nullopt;
      ++p;
    }
    auto [next, ec] = std::from_chars(p, end, *fields[f]);
    if (ec != std::errc{}) return std::nullopt;
    p = next;
  }
  if (p != end || r.delivered > r.clients) return std::nullopt;
  return r;
}

}  // namespace tcpms::benchapp
