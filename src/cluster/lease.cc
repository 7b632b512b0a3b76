#include "cluster/lease.h"

#include <algorithm>

namespace tcpms::cluster {

namespace {
constexpr uint64_t kRetryMs = 250;
}

LeaseTable::LeaseTable(std::string self, uint64_t lease_ms)
    : self_(std::move(self)), lease_ms_(std::max<uint64_t>(lease_ms, 300)) {}

uint64_t LeaseTable::refresh_period_ms() const noexcept { return lease_ms_ / 3; }

void LeaseTable::refreshed(uint64_t now_ms) noexcept {
  last_ok_ms_ = now_ms;
  ever_ok_ = true;
  next_refresh_ms_ = now_ms + refresh_period_ms();
}

void LeaseTable::refresh_failed(uint64_t now_ms) noexcept {
  next_refresh_ms_ = now_ms + std::min<uint64_t>(kRetryMs, refresh_period_ms());
}

bool LeaseTable::must_rebuild(uint64_t now_ms) const noexcept {
  return !ever_ok_ || now_ms - last_ok_ms_ >= lease_ms_;
}

LeaseTable::Change LeaseTable::apply_scan(const std::vector<std::string>& alive) {
  Change c;
  std::set<std::string> now;
  for (const auto& n : alive)
    if (n != self_) now.insert(n);
  std::set_difference(now.begin(), now.end(), alive_.begin(), alive_.end(),
                      std::back_inserter(c.joined));
  std::set_difference(alive_.begin(), alive_.end(), now.begin(), now.end(),
                      std::back_inserter(c.left));
  alive_ = std::move(now);
  return c;
}

bool LeaseTable::saw(const std::string& node) {
  return node != self_ && alive_.insert(node).second;
}

bool LeaseTable::forget(const std::string& node) { return alive_.erase(node) != 0; }

}  // namespace tcpms::cluster
