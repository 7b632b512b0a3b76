#include "routing/directory.h"

#include "routing/interest_keys.h"

namespace tcpms::routing {
namespace {

constexpr uint64_t kDirectorySeed = 0x243f6a8885a308d3ull;
constexpr uint64_t kHomeSeed = 0x13198a2e03707344ull;

inline uint64_t stored(uint64_t key) noexcept { return key == 0 ? 1 : key; }

}  // namespace

uint64_t client_key(std::string_view client_id) noexcept {
  return stored(key_hash(client_id, kDirectorySeed));
}

PeerId home_of(std::string_view client_id, uint32_t peers) noexcept {
  if (peers <= 1) return 0;
  const uint64_t h = key_hash(client_id, kHomeSeed);
  return static_cast<PeerId>((static_cast<unsigned __int128>(h) * peers) >> 64);
}

Directory::Directory() : slots_(16) {}

size_t Directory::probe(uint64_t key) const noexcept {
  const size_t mask = slots_.size() - 1;
  size_t i = static_cast<size_t>(key) & mask;
  while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask;
  return i;
}

void Directory::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, Slot{});
  for (const Slot& s : old)
    if (s.key != 0) slots_[probe(s.key)] = s;
}

void Directory::erase_at(size_t i) noexcept {
  // Backward-shift deletion keeps probe runs free of tombstones.
  const size_t mask = slots_.size() - 1;
  size_t hole = i;
  for (size_t j = (hole + 1) & mask; slots_[j].key != 0; j = (j + 1) & mask) {
    const size_t h = static_cast<size_t>(slots_[j].key) & mask;
    const bool between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!between) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = Slot{};
  --count_;
}

uint32_t Directory::next_ticket() noexcept {
  if (++counter_ == 0) counter_ = 1;  // 0 means "no ticket"
  return counter_;
}

Directory::ClaimResult Directory::claim(uint64_t key, PeerId holder) {
  key = stored(key);
  ClaimResult r;
  r.ticket = next_ticket();
  size_t i = probe(key);
  if (slots_[i].key == key) {
    r.previous = Entry{slots_[i].holder, slots_[i].ticket};
  } else {
    if ((count_ + 1) * 4 > slots_.size() * 3) {
      grow();
      i = probe(key);
    }
    slots_[i].key = key;
    ++count_;
  }
  slots_[i].holder = holder;
  slots_[i].ticket = r.ticket;
  return r;
}

bool Directory::release(uint64_t key, PeerId holder, uint32_t ticket) {
  key = stored(key);
  const size_t i = probe(key);
  if (slots_[i].key != key || slots_[i].holder != holder || slots_[i].ticket != ticket) return false;
  erase_at(i);
  return true;
}

std::optional<Directory::Entry> Directory::enroll(uint64_t key, PeerId holder, uint32_t ticket) {
  key = stored(key);
  if (ticket != 0 && newer_ticket(ticket, counter_)) counter_ = ticket;
  size_t i = probe(key);
  if (slots_[i].key == key) {
    Entry current{slots_[i].holder, slots_[i].ticket};
    if (current.holder == holder && current.ticket == ticket) return std::nullopt;
    if (!newer_ticket(ticket, current.ticket)) {
      // The entry here is newer: the enrolling peer holds a stale session.
      return current.holder == holder ? std::nullopt : std::optional<Entry>(Entry{holder, ticket});
    }
    slots_[i].holder = holder;
    slots_[i].ticket = ticket;
    return current.holder == holder ? std::nullopt : std::optional<Entry>(current);
  }
  if ((count_ + 1) * 4 > slots_.size() * 3) {
    grow();
    i = probe(key);
  }
  slots_[i] = Slot{key, ticket, holder};
  ++count_;
  return std::nullopt;
}

std::optional<Directory::Entry> Directory::find(uint64_t key) const {
  key = stored(key);
  const size_t i = probe(key);
  if (slots_[i].key != key) return std::nullopt;
  return Entry{slots_[i].holder, slots_[i].ticket};
}

void Directory::erase_key(uint64_t stored_key) noexcept {
  const size_t i = probe(stored_key);
  if (slots_[i].key == stored_key) erase_at(i);
}

size_t Directory::forget_holder(PeerId holder) {
  size_t n = 0;
  for (size_t i = 0; i < slots_.size();) {
    if (slots_[i].key != 0 && slots_[i].holder == holder) {
      erase_at(i);  // an entry from further on may have moved into i: look at i again
      ++n;
    } else {
      ++i;
    }
  }
  return n;
}

}  // namespace tcpms::routing
