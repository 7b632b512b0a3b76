// PeerSet: a set of peers (worker processes or cluster nodes) as a bitset, for "where does this
// message go". Up to kMaxPeers; the routing layer refuses more at start.
//
// Thread rules: a value type.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

#include "routing/frame.h"

namespace tcpms::routing {

inline constexpr uint32_t kMaxPeers = 1024;

class PeerSet {
 public:
  static constexpr uint32_t kWords = kMaxPeers / 64;

  void add(PeerId p) noexcept { w_[p >> 6] |= uint64_t{1} << (p & 63); }
  void remove(PeerId p) noexcept { w_[p >> 6] &= ~(uint64_t{1} << (p & 63)); }
  bool has(PeerId p) const noexcept { return (w_[p >> 6] >> (p & 63)) & 1; }
  bool empty() const noexcept {
    for (uint64_t w : w_)
      if (w != 0) return false;
    return true;
  }
  uint32_t count() const noexcept {
    uint32_t n = 0;
    for (uint64_t w : w_) n += static_cast<uint32_t>(std::popcount(w));
    return n;
  }
  void clear() noexcept { w_.fill(0); }
  uint64_t& word(uint32_t i) noexcept { return w_[i]; }
  uint64_t word(uint32_t i) const noexcept { return w_[i]; }
  PeerSet& operator|=(const PeerSet& o) noexcept {
    for (uint32_t i = 0; i < kWords; ++i) w_[i] |= o.w_[i];
    return *this;
  }
  // Calls f(peer) for each member, in increasing order.
  template <typename F>
  void for_each(F&& f) const {
    for (uint32_t i = 0; i < kWords; ++i) {
      for (uint64_t w = w_[i]; w != 0; w &= w - 1)
        f(static_cast<PeerId>(i * 64 + static_cast<uint32_t>(std::countr_zero(w))));
    }
  }

 private:
  std::array<uint64_t, kWords> w_{};
};

}  // namespace tcpms::routing
