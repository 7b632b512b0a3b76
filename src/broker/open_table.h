// Helpers for the open-addressing tables of pointers (linear probing, power-of-two size) that
// keep per-client indexes at 8 bytes a slot: the topic tree's edges and the client registry.
#pragma once

#include <cstddef>
#include <vector>

namespace tcpms::broker {

// Empties slots[index] by backward-shift deletion: later entries of the same probe run move
// back, so lookups never meet tombstones. `home(entry)` is the slot an entry hashes to.
template <typename T, typename Home>
void backward_shift_erase(std::vector<T*>& slots, size_t index, Home&& home) noexcept {
  const size_t mask = slots.size() - 1;
  size_t hole = index;
  for (size_t j = (hole + 1) & mask; slots[j] != nullptr; j = (j + 1) & mask) {
    const size_t h = home(slots[j]) & mask;
    // slots[j] may move into the hole unless its home lies cyclically in (hole, j].
    const bool between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!between) {
      slots[hole] = slots[j];
      hole = j;
    }
  }
  slots[hole] = nullptr;
}

}  // namespace tcpms::broker
