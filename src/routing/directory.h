// Directory: what the home of a set of client ids knows of each: which peer holds its session
// (connected or offline) and under which ticket.
//
// Tickets order the claims of one id: every claim takes the next number of this directory's
// counter, the newest claim wins, and the peer that held the id before is told to give up the
// session it holds under its (older) ticket. A holder compares tickets exactly, so a stale
// request never touches a newer session (peer_router.h has the whole protocol).
//
// Memory: 16 bytes a slot, at most 3/4 full. An entry is keyed by a 64-bit hash of the client
// id, not the id itself: a directory of a million ids holds no strings. Two ids with the same
// 64-bit hash (a chance of about 3 in 10^8 that any such pair exists among a million ids)
// would share an entry; the holder checks the id and the ticket of every request, so such a
// pair can make a push by id to one of them answer "no such client" until it reconnects, and
// never reaches the wrong client.
//
// Thread rules: not thread-safe; the router holds it under its mutex.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "routing/frame.h"

namespace tcpms::routing {

// The directory key and the home of a client id (fixed hashes: every process agrees).
uint64_t client_key(std::string_view client_id) noexcept;
PeerId home_of(std::string_view client_id, uint32_t peers) noexcept;

// True when ticket `a` is newer than `b` (serial-number order: tickets wrap).
inline bool newer_ticket(uint32_t a, uint32_t b) noexcept {
  return static_cast<int32_t>(a - b) > 0;
}

class Directory {
 public:
  struct Entry {
    PeerId holder = kNoPeer;
    uint32_t ticket = 0;
  };
  struct ClaimResult {
    uint32_t ticket = 0;
    std::optional<Entry> previous;
  };

  Directory();
  // `holder` claims `key`: it gets the next ticket and becomes the holder.
  ClaimResult claim(uint64_t key, PeerId holder);
  // The session registered under `ticket` ended: the entry goes if it is still that one.
  bool release(uint64_t key, PeerId holder, uint32_t ticket);
  // A holder tells a (restarted) home what it holds. The newer ticket keeps the entry; the
  // returned entry is the one that lost, if another peer held it (it must give the id up).
  std::optional<Entry> enroll(uint64_t key, PeerId holder, uint32_t ticket);
  std::optional<Entry> find(uint64_t key) const;
  // Forgets every entry held by `holder` (it restarted; it enrolls what it kept). Returns how
  // many.
  size_t forget_holder(PeerId holder);
  // Forgets every entry whose key `gone(key)` says is no longer homed here (homes moved when a
  // peer came up; its holders enroll there). Returns how many.
  template <typename Pred>
  size_t forget_if(Pred gone) {
    std::vector<uint64_t> keys;
    for (const Slot& s : slots_)
      if (s.key != 0 && gone(s.key)) keys.push_back(s.key);
    for (uint64_t k : keys) erase_key(k);
    return keys.size();
  }
  // Every entry, by stored key (what enroll() takes back): an upgrade hands them over
  // (router_image.h).
  template <typename F>
  void for_each(F f) const {
    for (const Slot& s : slots_)
      if (s.key != 0) f(s.key, Entry{s.holder, s.ticket});
  }
  uint32_t ticket_counter() const noexcept { return counter_; }
  // The counter a continued directory goes on from, so its tickets stay newer.
  void continue_tickets_from(uint32_t counter) noexcept {
    if (newer_ticket(counter, counter_)) counter_ = counter;
  }
  size_t size() const noexcept { return count_; }
  size_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint64_t key = 0;  // 0: empty (a key of 0 is stored as 1)
    uint32_t ticket = 0;
    PeerId holder = kNoPeer;
  };
  static_assert(sizeof(Slot) == 16);
  size_t probe(uint64_t key) const noexcept;
  void grow();
  void erase_at(size_t i) noexcept;
  void erase_key(uint64_t stored_key) noexcept;
  uint32_t next_ticket() noexcept;

  std::vector<Slot> slots_;
  size_t count_ = 0;
  uint32_t counter_ = 0;
};

}  // namespace tcpms::routing
