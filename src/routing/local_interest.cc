#include "routing/local_interest.h"

#include <algorithm>
#include <bit>

#include "routing/frame.h"
#include "routing/interest_keys.h"

namespace tcpms::routing {
namespace {

uint32_t pow2_at_least(uint64_t n) {
  return static_cast<uint32_t>(std::bit_ceil(std::max<uint64_t>(n, 8)));
}

}  // namespace

std::string LocalInterest::Counts::shape_bytes(bool& overflow) const {
  std::string out;
  overflow = shapes.size() > kMaxShapesPerPeer;
  size_t n = 0;
  for (const auto& [shape, count] : shapes) {
    if (n++ == kMaxShapesPerPeer) break;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((shape >> (8 * i)) & 0xff));
  }
  return out;
}

bool LocalInterest::Counts::bump(uint32_t s, int delta) noexcept {
  uint8_t& c = counts[s];
  if (delta > 0) {
    if (c == 255) return false;  // saturated: stays set for good
    return ++c == 1;
  }
  if (c == 0 || c == 255) return false;
  return --c == 0;
}

LocalInterest::LocalInterest(InterestOptions options, uint32_t loops)
    : options_(options), loops_(std::max<uint32_t>(loops, 1)) {
  current_.slots = pow2_at_least(options_.min_slots);
  current_.counts.assign(current_.slots, 0);
  dirty_bits_.assign((current_.slots + 63) / 64, 0);
}

bool LocalInterest::apply(Counts& c, std::string_view filter, int delta, bool track) {
  const FilterKey k = filter_key(filter);
  bool changed = false;
  if (k.shape != 0) {
    if (delta > 0) {
      changed = ++c.shapes[k.shape] == 1;
    } else if (auto it = c.shapes.find(k.shape); it != c.shapes.end() && --it->second == 0) {
      c.shapes.erase(it);
      changed = true;
    }
  }
  for (uint32_t i = 0; i < options_.hashes; ++i) {
    const uint32_t s = key_slot(k.hash, i, c.slots);
    if (c.bump(s, delta) && track) {
      changed = true;
      uint64_t& w = dirty_bits_[s / 64];
      const uint64_t bit = uint64_t{1} << (s % 64);
      if ((w & bit) == 0) {
        w |= bit;
        dirty_.push_back(s);
      }
    }
  }
  return changed && track;
}

void LocalInterest::add(std::string_view filter, uint32_t loop) {
  std::lock_guard lock(mu_);
  ++filters_;
  if (apply(current_, filter, +1, true)) ++generation_;
  if (rebuilding_ && loop < walked_.size() && walked_[loop]) apply(next_, filter, +1, false);
}

void LocalInterest::remove(std::string_view filter, uint32_t loop) {
  std::lock_guard lock(mu_);
  if (filters_ > 0) --filters_;
  if (apply(current_, filter, -1, true)) ++generation_;
  if (rebuilding_ && loop < walked_.size() && walked_[loop]) apply(next_, filter, -1, false);
}

uint32_t LocalInterest::slots() const {
  std::lock_guard lock(mu_);
  return current_.slots;
}

uint64_t LocalInterest::filters() const {
  std::lock_guard lock(mu_);
  return filters_;
}

uint32_t LocalInterest::wanted_slots() const {
  std::lock_guard lock(mu_);
  // The smallest power of two that holds bits_per_filter slots a filter: once grown, between
  // 1x and 2x bits_per_filter a filter. (Asking for twice the need made each rebuild
  // quadruple the bitmap, and every peer's RemoteInterest table with it: up to 4x
  // bits_per_filter, e.g. 262,144 slots for 12,500 filters where 131,072 keep 10 a filter.)
  const uint64_t need = filters_ * options_.bits_per_filter;
  if (need <= current_.slots) return current_.slots;
  return pow2_at_least(need);
}

bool LocalInterest::begin_rebuild(uint32_t slots) {
  std::lock_guard lock(mu_);
  if (rebuilding_ || slots <= current_.slots) return false;
  rebuilding_ = true;
  next_ = Counts{};
  next_.slots = slots;
  next_.counts.assign(slots, 0);
  walked_.assign(loops_, false);
  walks_left_ = loops_;
  return true;
}

void LocalInterest::add_walked(std::string_view filter) {
  std::lock_guard lock(mu_);
  if (rebuilding_) apply(next_, filter, +1, false);
}

bool LocalInterest::walk_done(uint32_t loop) {
  std::lock_guard lock(mu_);
  if (!rebuilding_ || loop >= walked_.size() || walked_[loop]) return false;
  walked_[loop] = true;
  if (--walks_left_ != 0) return false;
  current_ = std::move(next_);
  next_ = Counts{};
  rebuilding_ = false;
  dirty_bits_.assign((current_.slots + 63) / 64, 0);
  dirty_.clear();
  snapshot_due_ = true;
  return true;
}

bool LocalInterest::rebuilding() const {
  std::lock_guard lock(mu_);
  return rebuilding_;
}

std::string LocalInterest::snapshot_locked() const {
  std::vector<std::byte> bitmap(current_.slots / 8);
  for (uint32_t s = 0; s < current_.slots; ++s)
    if (current_.counts[s] != 0) bitmap[s / 8] |= std::byte{static_cast<uint8_t>(1u << (s % 8))};
  bool overflow = false;
  const std::string shapes = current_.shape_bytes(overflow);
  InterestSnapshot f;
  f.slots = current_.slots;
  f.flags = overflow ? kInterestOverflow : 0;
  f.shapes.bytes = as_bytes(shapes);
  f.bitmap = ByteView(bitmap.data(), bitmap.size());
  return encode(f);
}

uint64_t LocalInterest::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

std::string LocalInterest::snapshot(uint64_t* covers) const {
  std::lock_guard lock(mu_);
  if (covers != nullptr) *covers = generation_;
  return snapshot_locked();
}

std::string LocalInterest::take_update(uint64_t* covers) {
  std::lock_guard lock(mu_);
  if (covers != nullptr) *covers = generation_;
  bool overflow = false;
  std::string shapes = current_.shape_bytes(overflow);
  if (snapshot_due_) {
    snapshot_due_ = false;
    sent_shapes_ = std::move(shapes);
    return snapshot_locked();
  }
  if (dirty_.empty() && shapes == sent_shapes_) return {};
  std::string changes;
  changes.reserve(dirty_.size() * 4);
  for (uint32_t s : dirty_) {
    dirty_bits_[s / 64] &= ~(uint64_t{1} << (s % 64));
    uint32_t v = s | (current_.counts[s] != 0 ? InterestDelta::kSet : 0);
    for (int i = 0; i < 4; ++i) changes.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  dirty_.clear();
  InterestDelta f;
  f.slots = current_.slots;
  f.flags = overflow ? kInterestOverflow : 0;
  f.shapes.bytes = as_bytes(shapes);
  f.changes = as_bytes(changes);
  std::string out = encode(f);
  sent_shapes_ = std::move(shapes);
  return out;
}

}  // namespace tcpms::routing
