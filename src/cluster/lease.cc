#include "cluster/lease.h"

#include <algorithm>

namespace tcpms::cluster {

namespace {
constexpr uint64_t kRetryMs = 250;
}

LeaseTable::LeaseTable(uint64_t lease_ms) : lease_ms_(std::max<uint64_t>(lease_ms, 300)) {}

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

}  // namespace tcpms::cluster
