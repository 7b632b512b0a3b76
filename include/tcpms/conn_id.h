// ConnId: how any thread names a connection. 64 bits: {generation:32 | loop:10 | slot:22}.
// A loop reuses slots, never generations: each close bumps the slot's generation, so an id
// kept after its connection closed can never address the next connection in that slot.
#pragma once

#include <cstdint>
#include <functional>

namespace tcpms {

struct ConnId {
  static constexpr unsigned kSlotBits = 22;  // 4M connections per loop
  static constexpr unsigned kLoopBits = 10;  // 1024 loops per process
  static constexpr uint32_t kMaxSlots = 1u << kSlotBits;
  static constexpr uint32_t kMaxLoops = 1u << kLoopBits;

  uint64_t value = 0;  // 0 is never a live connection: generations start at 1

  static constexpr ConnId make(uint32_t loop, uint32_t slot, uint32_t generation) {
    return ConnId{(uint64_t{generation} << 32) | (uint64_t{loop} << kSlotBits) | slot};
  }
  constexpr uint32_t slot() const { return static_cast<uint32_t>(value) & (kMaxSlots - 1); }
  constexpr uint32_t loop() const { return static_cast<uint32_t>(value) >> kSlotBits; }
  constexpr uint32_t generation() const { return static_cast<uint32_t>(value >> 32); }
  constexpr bool valid() const { return value != 0; }

  friend constexpr bool operator==(ConnId, ConnId) = default;
};

}  // namespace tcpms

template <>
struct std::hash<tcpms::ConnId> {
  size_t operator()(tcpms::ConnId id) const noexcept { return std::hash<uint64_t>{}(id.value); }
};
