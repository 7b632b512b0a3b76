#include "routing/remote_interest.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <new>

#include "routing/interest_keys.h"

namespace tcpms::routing {

namespace {
constexpr uint8_t kNoTable = 0xFF;
}

// A row is `lane_bits` wide: the peer count rounded up to a power of two, at least 8 and at
// most 64 (then one 64-bit word per 64 peers). Narrow rows share a 64-bit word (`lanes` rows
// a word), so 8 workers pay 1 byte a slot instead of 8; the atomics stay 64-bit words.
struct RemoteInterest::Table {
  Table(uint32_t s, uint32_t w, uint32_t peers)
      : slots(s),
        words(w),
        lane_bits(w == 1 ? std::clamp<uint32_t>(std::bit_ceil(std::max<uint32_t>(peers, 1)), 8, 64) : 64),
        lanes(64 / lane_bits),
        lane_mask(lane_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << lane_bits) - 1),
        bytes((size_t{s} + lanes - 1) / lanes * w * 8) {
    // Anonymous pages, so a retired table can give its memory back (MADV_DONTNEED) while a
    // reader that still holds it reads zeros.
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    rows = static_cast<std::atomic<uint64_t>*>(p);
    members = std::make_unique<std::atomic<uint64_t>[]>(w);
    for (uint32_t i = 0; i < w; ++i) members[i].store(0, std::memory_order_relaxed);
  }
  ~Table() { ::munmap(rows, bytes); }
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // Slot `slot`'s bits of word `word` (bit p & 63 for peer p), and setting or clearing them.
  uint64_t get(uint32_t slot, uint32_t word) const {
    return (cell(slot, word).load(std::memory_order_relaxed) >> shift(slot)) & lane_mask;
  }
  void set(uint32_t slot, uint32_t word, uint64_t bit) const {
    cell(slot, word).fetch_or(bit << shift(slot), std::memory_order_relaxed);
  }
  void clear(uint32_t slot, uint32_t word, uint64_t bit) const {
    if (get(slot, word) & bit) cell(slot, word).fetch_and(~(bit << shift(slot)), std::memory_order_relaxed);
  }
  void retire() {
    for (uint32_t i = 0; i < words; ++i) members[i].store(0, std::memory_order_relaxed);
    member_count = 0;
    ::madvise(rows, bytes, MADV_DONTNEED);
  }

  const uint32_t slots;
  const uint32_t words;
  const uint32_t lane_bits;
  const uint32_t lanes;
  const uint64_t lane_mask;
  const size_t bytes;
  std::atomic<uint64_t>* rows;
  std::unique_ptr<std::atomic<uint64_t>[]> members;
  uint32_t member_count = 0;  // under mu_

 private:
  std::atomic<uint64_t>& cell(uint32_t slot, uint32_t word) const {
    return rows[size_t{slot / lanes} * words + word];
  }
  uint32_t shift(uint32_t slot) const { return (slot % lanes) * lane_bits; }
};

RemoteInterest::RemoteInterest(PeerId self, uint32_t peer_slots, uint8_t hashes)
    : self_(self),
      peer_slots_(std::min(peer_slots, kMaxPeers)),
      words_((std::min(peer_slots, kMaxPeers) + 63) / 64),
      hashes_(hashes),
      table_of_(std::min(peer_slots, kMaxPeers), kNoTable),
      peer_shapes_(std::min(peer_slots, kMaxPeers)),
      peer_flags_(std::min(peer_slots, kMaxPeers), 0),
      everything_(std::make_unique<std::atomic<uint64_t>[]>(PeerSet::kWords)) {
  for (uint32_t i = 0; i < PeerSet::kWords; ++i) everything_[i].store(0, std::memory_order_relaxed);
}

RemoteInterest::~RemoteInterest() = default;

RemoteInterest::Table* RemoteInterest::table_for(uint32_t slots) {
  for (auto& slot : tables_) {
    Table* t = slot.load(std::memory_order_relaxed);
    if (t != nullptr && t->slots == slots) return t;
  }
  // A free place: no table, or one with nobody in it; else the table of the smaller size.
  int place = -1;
  for (int i = 0; i < 2 && place < 0; ++i) {
    Table* t = tables_[i].load(std::memory_order_relaxed);
    if (t == nullptr || t->member_count == 0) place = i;
  }
  if (place < 0) {
    place = tables_[0].load()->slots < tables_[1].load()->slots ? 0 : 1;
    Table* old = tables_[place].load(std::memory_order_relaxed);
    // Its peers get everything until their next snapshot.
    for (PeerId p = 0; p < peer_slots_; ++p) {
      if (table_of_[p] != place) continue;
      table_of_[p] = kNoTable;
      everything_[p >> 6].fetch_or(uint64_t{1} << (p & 63), std::memory_order_relaxed);
    }
    old->retire();
  }
  Table* old = tables_[place].load(std::memory_order_relaxed);
  if (old != nullptr) old->retire();
  all_tables_.push_back(std::make_unique<Table>(slots, words_, peer_slots_));
  Table* t = all_tables_.back().get();
  tables_[place].store(t, std::memory_order_release);
  uint32_t largest = largest_.load(std::memory_order_relaxed);
  if (slots > largest) largest_.store(slots, std::memory_order_relaxed);
  return t;
}

void RemoteInterest::remove_from(Table& t, PeerId p) {
  const uint32_t w = p >> 6;
  const uint64_t keep = ~(uint64_t{1} << (p & 63));
  t.members[w].fetch_and(keep, std::memory_order_relaxed);
  if (t.member_count > 0) --t.member_count;
  for (uint32_t s = 0; s < t.slots; ++s) t.clear(s, w, ~keep);
}

bool RemoteInterest::add_shapes(const ShapeList& shapes) {
  bool all = true;
  for (size_t i = 0; i < shapes.count(); ++i) {
    const uint64_t shape = shapes.at(i);
    if (shape == 0) continue;
    const uint32_t n = shape_count_.load(std::memory_order_relaxed);
    bool known = false;
    for (uint32_t k = 0; k < n && !known; ++k) known = shapes_[k].load(std::memory_order_relaxed) == shape;
    if (known) continue;
    if (n == kMaxShapes) {
      all = false;
      continue;
    }
    shapes_[n].store(shape, std::memory_order_relaxed);
    shape_count_.store(n + 1, std::memory_order_release);  // readers see the shape, then the count
  }
  return all;
}

void RemoteInterest::set_everything(PeerId p, bool on) {
  const uint64_t bit = uint64_t{1} << (p & 63);
  if (on)
    everything_[p >> 6].fetch_or(bit, std::memory_order_relaxed);
  else
    everything_[p >> 6].fetch_and(~bit, std::memory_order_relaxed);
}

void RemoteInterest::apply(PeerId from, const InterestSnapshot& s) {
  if (from >= peer_slots_ || from == self_ || s.slots == 0 || s.bitmap.size() * 8 != s.slots) return;
  std::lock_guard lock(mu_);
  // Shapes before bits: a reader that sees the new bits also tries their shapes.
  const bool fits = add_shapes(s.shapes) && (s.flags & kInterestOverflow) == 0;
  peer_shapes_[from] = std::string(as_chars(s.shapes.bytes));
  peer_flags_[from] = s.flags;
  Table* t = table_for(s.slots);
  const uint32_t w = from >> 6;
  const uint64_t bit = uint64_t{1} << (from & 63);
  // New bits first, then the peer becomes a member here, then old bits go: a reader never
  // sees the peer without a filter it has in both versions.
  for (uint32_t i = 0; i < s.slots; ++i)
    if ((static_cast<uint8_t>(s.bitmap[i / 8]) >> (i % 8)) & 1) t->set(i, w, bit);
  const uint8_t place = tables_[0].load(std::memory_order_relaxed) == t ? 0 : 1;
  const uint8_t before = table_of_[from];
  if (before != place) {
    t->members[w].fetch_or(bit, std::memory_order_release);
    ++t->member_count;
  }
  set_everything(from, !fits);
  if (before != place && before != kNoTable) {
    Table* old = tables_[before].load(std::memory_order_relaxed);
    if (old != nullptr) {
      remove_from(*old, from);
      if (old->member_count == 0) old->retire();
    }
  }
  table_of_[from] = place;
  if (before == place) {
    for (uint32_t i = 0; i < s.slots; ++i) {
      if ((static_cast<uint8_t>(s.bitmap[i / 8]) >> (i % 8)) & 1) continue;
      t->clear(i, w, bit);
    }
  }
}

bool RemoteInterest::apply(PeerId from, const InterestDelta& d) {
  if (from >= peer_slots_ || from == self_) return false;
  std::lock_guard lock(mu_);
  const uint8_t place = table_of_[from];
  Table* t = place == kNoTable ? nullptr : tables_[place].load(std::memory_order_relaxed);
  if (t == nullptr || t->slots != d.slots) return false;
  const uint32_t w = from >> 6;
  const uint64_t bit = uint64_t{1} << (from & 63);
  const bool fits = add_shapes(d.shapes) && (d.flags & kInterestOverflow) == 0;
  set_everything(from, !fits);
  peer_shapes_[from] = std::string(as_chars(d.shapes.bytes));
  peer_flags_[from] = d.flags;
  for (size_t i = 0; i < d.count(); ++i) {
    const uint32_t v = d.at(i);
    const uint32_t s = v & ~InterestDelta::kSet;
    if (s >= t->slots) continue;
    if (v & InterestDelta::kSet)
      t->set(s, w, bit);
    else
      t->clear(s, w, bit);
  }
  return true;
}

void RemoteInterest::forget(PeerId from) {
  if (from >= peer_slots_) return;
  std::lock_guard lock(mu_);
  const uint8_t place = table_of_[from];
  if (place != kNoTable) {
    Table* t = tables_[place].load(std::memory_order_relaxed);
    if (t != nullptr) {
      remove_from(*t, from);
      if (t->member_count == 0) t->retire();
    }
    table_of_[from] = kNoTable;
  }
  set_everything(from, false);
}

bool RemoteInterest::knows(PeerId p) {
  if (p >= peer_slots_) return false;
  std::lock_guard lock(mu_);
  return table_of_[p] != kNoTable;
}

std::string RemoteInterest::column_snapshot(PeerId p) {
  if (p >= peer_slots_) return {};
  std::lock_guard lock(mu_);
  const uint8_t place = table_of_[p];
  Table* t = place == kNoTable ? nullptr : tables_[place].load(std::memory_order_relaxed);
  if (t == nullptr) return {};
  std::vector<std::byte> bitmap(t->slots / 8);
  const uint32_t w = p >> 6;
  const uint64_t bit = uint64_t{1} << (p & 63);
  for (uint32_t i = 0; i < t->slots; ++i)
    if (t->get(i, w) & bit)
      bitmap[i / 8] |= std::byte{static_cast<uint8_t>(1u << (i % 8))};
  InterestSnapshot f;
  f.slots = t->slots;
  f.flags = peer_flags_[p];
  f.shapes.bytes = as_bytes(peer_shapes_[p]);
  f.bitmap = ByteView(bitmap.data(), bitmap.size());
  return encode(f);
}

bool RemoteInterest::has_interest(PeerId p) {
  if (p >= peer_slots_ || p == self_) return false;
  const uint32_t w = p >> 6;
  const uint64_t bit = uint64_t{1} << (p & 63);
  if (everything_[w].load(std::memory_order_relaxed) & bit) return true;
  std::lock_guard lock(mu_);
  const uint8_t place = table_of_[p];
  Table* t = place == kNoTable ? nullptr : tables_[place].load(std::memory_order_relaxed);
  if (t == nullptr) return false;
  for (uint32_t i = 0; i < t->slots; ++i)
    if (t->get(i, w) & bit) return true;
  return false;
}

void RemoteInterest::send_everything(PeerId from) {
  if (from >= peer_slots_ || from == self_) return;
  forget(from);
  set_everything(from, true);
}

void RemoteInterest::match(std::string_view topic, PeerSet& out) const {
  // The keys to look up: the topic itself, then one per shape in use that fits its length.
  uint64_t keys[1 + kMaxShapes];
  uint32_t nkeys = 0;
  keys[nkeys++] = exact_topic_key(topic);
  const uint32_t shapes = shape_count_.load(std::memory_order_acquire);
  if (shapes != 0) {
    std::string_view levels[kMaxShapeLevels + 1];
    uint32_t count = 0;
    split_levels(topic, levels, kMaxShapeLevels + 1, count);
    thread_local std::string scratch;
    for (uint32_t k = 0; k < shapes; ++k) {
      uint64_t key;
      if (topic_shape_key(shapes_[k].load(std::memory_order_relaxed), levels, count, scratch, key))
        keys[nkeys++] = key;
    }
  }
  for (const auto& slot : tables_) {
    Table* t = slot.load(std::memory_order_acquire);
    if (t == nullptr) continue;
    uint64_t members[PeerSet::kWords];
    bool any = false;
    for (uint32_t w = 0; w < t->words; ++w) {
      members[w] = t->members[w].load(std::memory_order_acquire);
      any = any || members[w] != 0;
    }
    if (!any) continue;
    for (uint32_t k = 0; k < nkeys; ++k) {
      for (uint32_t w = 0; w < t->words; ++w) {
        uint64_t acc = members[w];
        for (uint32_t i = 0; i < hashes_ && acc != 0; ++i)
          acc &= t->get(key_slot(keys[k], i, t->slots), w);
        out.word(w) |= acc;
      }
    }
  }
  for (uint32_t w = 0; w < PeerSet::kWords; ++w)
    out.word(w) |= everything_[w].load(std::memory_order_relaxed);
  out.remove(self_);
}

size_t RemoteInterest::table_bytes() const {
  size_t n = 0;
  for (const auto& slot : tables_) {
    Table* t = slot.load(std::memory_order_relaxed);
    if (t != nullptr && t->member_count != 0) n += t->bytes;
  }
  return n;
}

}  // namespace tcpms::routing
