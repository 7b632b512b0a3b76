// Which node is the home of a client id (routing/directory.h): rendezvous hashing over the
// nodes this node knows to be up. Every live node scores the id's key; the highest score is
// its home. When a node goes, only the ids it was home of move (each to the next-highest
// node); when one comes, only the ids it now wins move to it. Nodes that see the same set of
// live nodes agree, with no coordination; nodes whose views differ for a moment (one has seen
// a join or a departure, another not yet) may send the same id's claim to two homes: the
// race docs/cluster.md describes.
//
// Thread rules: pure functions.
#pragma once

#include <bit>
#include <cstdint>

namespace tcpms::cluster {

inline constexpr uint32_t kMaxNodeSlots = 64;  // a live set is one 64-bit mask

inline uint64_t ring_mix(uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// The home of `key` among the slots set in `live`; 0xFFFF if none.
inline uint16_t rendezvous_home(uint64_t key, uint64_t live) noexcept {
  uint16_t best = 0xFFFF;
  uint64_t best_score = 0;
  for (uint64_t w = live; w != 0; w &= w - 1) {
    const auto slot = static_cast<uint16_t>(std::countr_zero(w));
    const uint64_t score = ring_mix(key ^ ring_mix(uint64_t{slot} + 1));
    if (best == 0xFFFF || score > best_score) {
      best = slot;
      best_score = score;
    }
  }
  return best;
}

}  // namespace tcpms::cluster
