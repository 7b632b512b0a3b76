#include "routing/remote_interest.h"

#include <algorithm>
#include <bit>
#include <iterator>
#include <new>
#include <optional>
#include <stdexcept>
#include <vector>

#include "routing/interest_keys.h"
#include "wire/little_endian.h"

namespace tcpms::routing {

namespace {
constexpr uint8_t kNoTable = 0xFF;
constexpr size_t kPage = 4096;
// Address space for the tables (only what is written costs memory): 2,048 tables of 4 MiB, or a
// few of the largest any process would grow to.
constexpr size_t kArenaBytes = size_t{8} << 30;
}  // namespace

// A table lives in one block of the region: this header on the first page, the rows from the
// second on (so that their pages can be given back alone).
//
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
    for (auto& m : members) m.store(0, std::memory_order_relaxed);
  }
  static size_t block_bytes(uint32_t slots, uint32_t words, uint32_t peers) {
    static_assert(sizeof(Table) <= kPage);
    const Table probe(slots, words, peers);
    return kPage + probe.bytes;
  }
  std::atomic<uint64_t>* rows() const {
    return reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(const_cast<Table*>(this)) + kPage);
  }

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

  const uint32_t slots;
  const uint32_t words;
  const uint32_t lane_bits;
  const uint32_t lanes;
  const uint64_t lane_mask;
  const size_t bytes;  // of the rows
  std::atomic<uint64_t> members[PeerSet::kWords];
  uint32_t member_count = 0;  // under the lock

 private:
  std::atomic<uint64_t>& cell(uint32_t slot, uint32_t word) const {
    return rows()[size_t{slot / lanes} * words + word];
  }
  uint32_t shift(uint32_t slot) const { return (slot % lanes) * lane_bits; }
};

// What the processes that share a region share besides the tables: fixed-size, in the
// region's header.
struct RemoteInterest::State {
  std::atomic<Table*> tables[2] = {nullptr, nullptr};
  std::atomic<uint32_t> largest{0};
  // By peer: 0, 1, or kNoTable. Changed under the lock; read without it by a column's writer
  // (apply of its own delta).
  std::atomic<uint8_t> table_of[kMaxPeers];
  // By peer: its shapes and flags as its last frame carried them (for column_snapshot).
  uint8_t flags[kMaxPeers] = {};
  uint8_t shapes_count_of[kMaxPeers] = {};
  uint64_t shapes_of[kMaxPeers][kMaxShapesPerPeer];
  // Every wildcard shape any peer has announced, append-only (so a reader never sees one
  // vanish): a publish looks up one key per shape here. Shapes no longer used stay and cost a
  // lookup that finds nothing.
  static constexpr uint32_t kMaxShapes = 256;
  std::atomic<uint64_t> shapes[kMaxShapes];
  std::atomic<uint32_t> shape_count{0};
  std::atomic<uint64_t> everything[PeerSet::kWords];  // peers that get every publish

  State() {
    for (auto& t : table_of) t.store(kNoTable, std::memory_order_relaxed);
    for (auto& s : shapes) s.store(0, std::memory_order_relaxed);
    for (auto& e : everything) e.store(0, std::memory_order_relaxed);
  }
};

std::unique_ptr<InterestRegion> RemoteInterest::shared_region(std::string* error) {
  return InterestRegion::create(InterestRegion::Sharing::kWithChildren, sizeof(State), kArenaBytes, error);
}

namespace {
std::unique_ptr<InterestRegion> private_region(size_t header_bytes) {
  std::string error;
  auto region = InterestRegion::create(InterestRegion::Sharing::kPrivate, header_bytes, kArenaBytes, &error);
  if (!region) throw std::runtime_error(error);
  return region;
}
}  // namespace

RemoteInterest::RemoteInterest(PeerId self, uint32_t peer_slots, uint8_t hashes, InterestRegion* shared)
    : self_(self),
      peer_slots_(std::min(peer_slots, kMaxPeers)),
      words_((std::min(peer_slots, kMaxPeers) + 63) / 64),
      hashes_(hashes),
      own_region_(shared == nullptr ? private_region(sizeof(State)) : nullptr),
      region_(shared != nullptr ? shared : own_region_.get()),
      state_(static_cast<State*>(region_->header([](void* at) { new (at) State(); }))) {
  // A worker that starts again finds its old column: what it held is gone.
  if (region_->shared()) forget(self_);
}

RemoteInterest::~RemoteInterest() = default;

uint32_t RemoteInterest::largest_slots() const noexcept {
  return state_->largest.load(std::memory_order_relaxed);
}

RemoteInterest::Table* RemoteInterest::table_for(uint32_t slots) {
  State& st = *state_;
  for (auto& slot : st.tables) {
    Table* t = slot.load(std::memory_order_relaxed);
    if (t != nullptr && t->slots == slots) return t;
  }
  // A free place: no table, or one with nobody in it; else the table of the smaller size.
  int place = -1;
  for (int i = 0; i < 2 && place < 0; ++i) {
    Table* t = st.tables[i].load(std::memory_order_relaxed);
    if (t == nullptr || t->member_count == 0) place = i;
  }
  if (place < 0) {
    place = st.tables[0].load()->slots < st.tables[1].load()->slots ? 0 : 1;
    // Its peers get everything until their next snapshot.
    for (PeerId p = 0; p < peer_slots_; ++p) {
      if (st.table_of[p].load(std::memory_order_relaxed) != place) continue;
      st.table_of[p].store(kNoTable, std::memory_order_relaxed);
      st.everything[p >> 6].fetch_or(uint64_t{1} << (p & 63), std::memory_order_relaxed);
    }
  }
  Table* old = st.tables[place].load(std::memory_order_relaxed);
  if (old != nullptr) retire(*old);
  void* block = region_->allocate(Table::block_bytes(slots, words_, peer_slots_));
  if (block == nullptr) return nullptr;
  Table* t = new (block) Table(slots, words_, peer_slots_);
  st.tables[place].store(t, std::memory_order_release);
  if (slots > st.largest.load(std::memory_order_relaxed)) st.largest.store(slots, std::memory_order_relaxed);
  return t;
}

void RemoteInterest::retire(Table& t) {
  for (auto& m : t.members) m.store(0, std::memory_order_relaxed);
  t.member_count = 0;
  region_->give_back(t.rows(), t.bytes);
}

bool RemoteInterest::add_shapes(const ShapeList& shapes) {
  State& st = *state_;
  bool all = true;
  for (size_t i = 0; i < shapes.count(); ++i) {
    const uint64_t shape = shapes.at(i);
    if (shape == 0) continue;
    const uint32_t n = st.shape_count.load(std::memory_order_relaxed);
    bool known = false;
    for (uint32_t k = 0; k < n && !known; ++k) known = st.shapes[k].load(std::memory_order_relaxed) == shape;
    if (known) continue;
    if (n == State::kMaxShapes) {
      all = false;
      continue;
    }
    st.shapes[n].store(shape, std::memory_order_relaxed);
    st.shape_count.store(n + 1, std::memory_order_release);  // readers see the shape, then the count
  }
  return all;
}

void RemoteInterest::keep_shapes(PeerId p, const ShapeList& shapes, uint8_t flags) {
  const size_t n = std::min(shapes.count(), kMaxShapesPerPeer);
  for (size_t i = 0; i < n; ++i) state_->shapes_of[p][i] = shapes.at(i);
  state_->shapes_count_of[p] = static_cast<uint8_t>(n);
  state_->flags[p] = flags;
}

void RemoteInterest::set_everything(PeerId p, bool on) {
  const uint64_t bit = uint64_t{1} << (p & 63);
  if (on)
    state_->everything[p >> 6].fetch_or(bit, std::memory_order_relaxed);
  else
    state_->everything[p >> 6].fetch_and(~bit, std::memory_order_relaxed);
}

void RemoteInterest::apply(PeerId from, const InterestSnapshot& s) {
  if (!writes(from) || s.slots == 0 || s.bitmap.size() * 8 != s.slots) return;
  State& st = *state_;
  const uint32_t w = from >> 6;
  const uint64_t bit = uint64_t{1} << (from & 63);
  auto in_snapshot = [&](uint32_t i) { return (static_cast<uint8_t>(s.bitmap[i / 8]) >> (i % 8)) & 1; };
  // The lock is held to pick the table and to change who is in it, not while the column's bits
  // are written (a snapshot is a pass over every slot, and with shared tables every worker
  // sends one each time the sizes double, all about at once). The column's bits are the
  // writer's alone; a table this column is joining counts it as a member from the start, so
  // no one retires it as empty meanwhile, and one retired all the same (a third size came,
  // table_for) is noticed and the snapshot written again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    Table* t;
    uint8_t place;
    bool fits;
    {
      InterestRegion::Lock lock(*region_);
      // Shapes before bits: a reader that sees the new bits also tries their shapes.
      fits = add_shapes(s.shapes) && (s.flags & kInterestOverflow) == 0;
      keep_shapes(from, s.shapes, s.flags);
      t = table_for(s.slots);
      if (t == nullptr) break;
      place = st.tables[0].load(std::memory_order_relaxed) == t ? 0 : 1;
      if (st.table_of[from].load(std::memory_order_relaxed) != place) ++t->member_count;
    }
    // New bits first, then the column becomes a member here, then old bits go: a reader never
    // sees the column without a filter it has in both versions.
    for (uint32_t i = 0; i < s.slots; ++i)
      if (in_snapshot(i)) t->set(i, w, bit);
    Table* old = nullptr;
    {
      InterestRegion::Lock lock(*region_);
      if (st.tables[place].load(std::memory_order_relaxed) != t) continue;  // retired meanwhile
      const uint8_t before = st.table_of[from].load(std::memory_order_relaxed);
      if (before != place) {
        t->members[w].fetch_or(bit, std::memory_order_release);
        if (before != kNoTable) old = leave(before, from);
        st.table_of[from].store(place, std::memory_order_relaxed);
      }
      set_everything(from, !fits);
    }
    if (old != nullptr) {
      clear_column(*old, from);
    } else {
      for (uint32_t i = 0; i < s.slots; ++i)
        if (!in_snapshot(i)) t->clear(i, w, bit);
    }
    return;
  }
  // No table at this size (no memory for one, or each was retired under it): the column gets
  // everything until a snapshot fits.
  InterestRegion::Lock lock(*region_);
  forget_locked(from);
  set_everything(from, true);
}

RemoteInterest::Table* RemoteInterest::leave(uint8_t place, PeerId p) {
  Table* t = state_->tables[place].load(std::memory_order_relaxed);
  if (t == nullptr) return nullptr;
  t->members[p >> 6].fetch_and(~(uint64_t{1} << (p & 63)), std::memory_order_relaxed);
  if (t->member_count > 0) --t->member_count;
  if (t->member_count != 0) return t;
  retire(*t);
  return nullptr;
}

void RemoteInterest::clear_column(Table& t, PeerId p) {
  const uint32_t w = p >> 6;
  const uint64_t bit = uint64_t{1} << (p & 63);
  for (uint32_t s = 0; s < t.slots; ++s) t.clear(s, w, bit);
}

bool RemoteInterest::apply(PeerId from, const InterestDelta& d) {
  if (!writes(from)) return false;
  // A worker's own delta is written without the region's lock, which the other workers take:
  // it comes with every SUBSCRIBE, on a loop thread, and a worker preempted while holding a
  // lock that 50 others want stalls them all. Its column's bits are its alone (atomics), the
  // table it is in changes only under the lock, and a table retired meanwhile leaves it
  // getting every publish until its next snapshot (table_for). The lock is needed only for
  // what others write too: the union of shapes, when one is new, and the flag that says it
  // gets everything.
  std::optional<InterestRegion::Lock> lock;
  if (!shared() || !shapes_known(d.shapes) || everything(from) != ((d.flags & kInterestOverflow) != 0))
    lock.emplace(*region_);
  State& st = *state_;
  const uint8_t place = st.table_of[from].load(std::memory_order_relaxed);
  Table* t = place == kNoTable ? nullptr : st.tables[place].load(std::memory_order_relaxed);
  if (t == nullptr || t->slots != d.slots) return false;
  const uint32_t w = from >> 6;
  const uint64_t bit = uint64_t{1} << (from & 63);
  if (lock) {
    const bool fits = add_shapes(d.shapes) && (d.flags & kInterestOverflow) == 0;
    set_everything(from, !fits);
    // Kept for column_snapshot(), whose frames only a private region applies: a shared
    // column may show the shapes of its last locked update.
    keep_shapes(from, d.shapes, d.flags);
  }
  for (size_t i = 0; i < d.count(); ++i) {
    const uint32_t v = d.at(i);
    const uint32_t slot = v & ~InterestDelta::kSet;
    if (slot >= t->slots) continue;
    if (v & InterestDelta::kSet)
      t->set(slot, w, bit);
    else
      t->clear(slot, w, bit);
  }
  return true;
}

bool RemoteInterest::shapes_known(const ShapeList& shapes) const {
  const State& st = *state_;
  const uint32_t n = st.shape_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < shapes.count(); ++i) {
    const uint64_t shape = shapes.at(i);
    if (shape == 0) continue;
    bool known = false;
    for (uint32_t k = 0; k < n && !known; ++k) known = st.shapes[k].load(std::memory_order_relaxed) == shape;
    if (!known) return false;
  }
  return true;
}

bool RemoteInterest::everything(PeerId p) const {
  return (state_->everything[p >> 6].load(std::memory_order_relaxed) >> (p & 63)) & 1;
}

void RemoteInterest::forget(PeerId from) {
  if (!writes(from)) return;
  InterestRegion::Lock lock(*region_);
  forget_locked(from);
}

void RemoteInterest::forget_locked(PeerId from) {
  State& st = *state_;
  const uint8_t place = st.table_of[from].load(std::memory_order_relaxed);
  if (place != kNoTable) {
    if (Table* t = leave(place, from)) clear_column(*t, from);
    st.table_of[from].store(kNoTable, std::memory_order_relaxed);
  }
  set_everything(from, false);
}

bool RemoteInterest::knows(PeerId p) {
  if (p >= peer_slots_) return false;
  InterestRegion::Lock lock(*region_);
  return state_->table_of[p].load(std::memory_order_relaxed) != kNoTable;
}

std::string RemoteInterest::column_snapshot(PeerId p) {
  if (p >= peer_slots_) return {};
  InterestRegion::Lock lock(*region_);
  State& st = *state_;
  const uint8_t place = st.table_of[p].load(std::memory_order_relaxed);
  Table* t = place == kNoTable ? nullptr : st.tables[place].load(std::memory_order_relaxed);
  if (t == nullptr) return {};
  std::vector<std::byte> bitmap(t->slots / 8);
  const uint32_t w = p >> 6;
  const uint64_t bit = uint64_t{1} << (p & 63);
  for (uint32_t i = 0; i < t->slots; ++i)
    if (t->get(i, w) & bit)
      bitmap[i / 8] |= std::byte{static_cast<uint8_t>(1u << (i % 8))};
  std::string shapes;
  wire::LeWriter out(shapes);
  for (size_t i = 0; i < st.shapes_count_of[p]; ++i) out.u64(st.shapes_of[p][i]);
  InterestSnapshot f;
  f.slots = t->slots;
  f.flags = st.flags[p];
  f.shapes.bytes = as_bytes(shapes);
  f.bitmap = ByteView(bitmap.data(), bitmap.size());
  return encode(f);
}

bool RemoteInterest::has_interest(PeerId p) {
  if (p >= peer_slots_ || p == self_) return false;
  const uint32_t w = p >> 6;
  const uint64_t bit = uint64_t{1} << (p & 63);
  if (state_->everything[w].load(std::memory_order_relaxed) & bit) return true;
  // No lock (as match()): a scan of a column, which others must not wait for.
  const uint8_t place = state_->table_of[p];
  Table* t = place == kNoTable ? nullptr : state_->tables[place].load(std::memory_order_relaxed);
  if (t == nullptr) return false;
  for (uint32_t i = 0; i < t->slots; ++i)
    if (t->get(i, w) & bit) return true;
  return false;
}

void RemoteInterest::send_everything(PeerId from) {
  if (!writes(from)) return;
  InterestRegion::Lock lock(*region_);
  forget_locked(from);
  set_everything(from, true);
}

void RemoteInterest::match(std::string_view topic, PeerSet& out) const {
  const State& st = *state_;
  // The keys to look up: the topic itself, then one per shape in use that fits its length.
  uint64_t keys[1 + State::kMaxShapes];
  uint32_t nkeys = 0;
  keys[nkeys++] = exact_topic_key(topic);
  const uint32_t shapes = st.shape_count.load(std::memory_order_acquire);
  if (shapes != 0) {
    std::string_view levels[kMaxShapeLevels + 1];
    uint32_t count = 0;
    split_levels(topic, levels, kMaxShapeLevels + 1, count);
    thread_local std::string scratch;
    for (uint32_t k = 0; k < shapes; ++k) {
      uint64_t key;
      if (topic_shape_key(st.shapes[k].load(std::memory_order_relaxed), levels, count, scratch, key))
        keys[nkeys++] = key;
    }
  }
  for (const auto& slot : st.tables) {
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
    out.word(w) |= st.everything[w].load(std::memory_order_relaxed);
  out.remove(self_);
}

size_t RemoteInterest::table_bytes() const {
  if (shared() && self_ != 0) return 0;
  size_t n = 0;
  for (const auto& slot : state_->tables) {
    Table* t = slot.load(std::memory_order_relaxed);
    if (t != nullptr && t->member_count != 0) n += t->bytes;
  }
  return n;
}

}  // namespace tcpms::routing
