// InterestAcks: which of this process's interest updates the other peers have applied, and the
// SUBACKs waiting for it.
//
// A SUBACK tells the client that publishes to its filter reach it. A publish on another peer
// goes only where that peer's copy of the interest bitmaps says (peer_router.h), and the
// update carrying a new filter leaves at most once an interval, through the hub with many
// peers: a SUBACK sent at once would let a publish elsewhere miss its subscriber (issue 15,
// docs/scale.md "The missing messages"). So the subscribing loop holds the SUBACK until the
// peers have applied the update, or until a deadline.
//
// The protocol (frames InterestMark / InterestApplied, frame.h): every local change that a
// peer must hear of has a number, its LocalInterest generation. After an update the sender
// sends InterestMark{generation} behind it (per-pair order: the update arrives first) while
// SUBACKs wait. Directly, each peer answers InterestApplied{generation}; a wait is over when
// every peer that is up has answered its number or more. Through the hub, a peer counts only
// the hub's answer: the hub numbers its relays (rounds), puts an InterestMark{round} of its own
// at the end of a relay that carries marked updates, and answers a subscriber with its
// generation once every peer has answered that round. A peer that comes up gets a snapshot of
// everything (the hub: every column it knows) and counts as having applied it.
//
// This class is the bookkeeping only, without I/O: the router sends the frames it says and runs
// the resumes it hands back, outside its lock.
//
// Thread rules: every method from any thread (one mutex).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "routing/frame.h"

namespace tcpms::routing {

class InterestAcks {
 public:
  using Resume = std::function<void()>;

  // `hub`: kNoPeer when every peer sends its updates to every other.
  InterestAcks(PeerId self, uint32_t peers, PeerId hub);

  // --- the subscribing side ---
  // A SUBACK waiting until the peers have applied generation `generation`, or `due_ms`. False
  // when they have, or no peer is up: nothing is kept, the caller goes on.
  bool hold(uint64_t generation, uint64_t due_ms, Resume resume);
  // The mark to send after an update covering `generation`: set while waits are held for
  // something not marked yet. Recorded as sent.
  std::optional<uint64_t> mark_due(uint64_t generation);
  // `from` has applied our updates up to `generation` (directly: each peer; through the hub:
  // the hub, for every peer; for the hub itself, its own rounds' answers).
  std::vector<Resume> applied(PeerId from, uint64_t generation);
  // `peer` came up and was sent a snapshot covering `generation` (directly, or the hub's).
  std::vector<Resume> peer_up(PeerId peer, uint64_t generation);
  std::vector<Resume> peer_down(PeerId peer);
  // Waits whose deadline passed: their SUBACKs go without the answer.
  std::vector<Resume> expired(uint64_t now_ms);
  std::optional<uint64_t> next_deadline() const;
  uint64_t held() const;

  // --- the hub's side ---
  // The hub's round that a relay about to be sent would carry, when subscribers' marks
  // wait for one (the marks received since the last relay); each of them is answered once
  // every peer has answered the round. nullopt: the relay needs no mark.
  std::optional<uint64_t> hub_round(std::vector<std::pair<PeerId, uint64_t>> marks);
  struct Answer {
    PeerId to;  // self: this process's own waits (pass to applied(self, ...))
    uint64_t generation;
  };
  // A peer answered round `round` (it applied every relay up to it).
  std::vector<Answer> hub_round_applied(PeerId from, uint64_t round);
  // A peer that came up got every column the hub knows: it counts as having every round sent.
  std::vector<Answer> hub_peer_up(PeerId peer);
  std::vector<Answer> hub_peer_down(PeerId peer);

 private:
  struct Wait {
    uint64_t generation;
    uint64_t due_ms;
    Resume resume;
  };
  struct Round {
    uint64_t round;
    std::vector<std::pair<PeerId, uint64_t>> marks;
  };
  // The generation every peer that counts has applied; UINT64_MAX when none counts.
  uint64_t known_everywhere() const;
  std::vector<Resume> release_known();
  uint64_t round_everywhere() const;
  std::vector<Answer> release_rounds();
  bool counts(PeerId p) const;

  const PeerId self_;
  const uint32_t peers_;
  const PeerId hub_;
  mutable std::mutex mu_;
  std::vector<uint8_t> up_;         // by peer
  std::vector<uint64_t> applied_;   // by peer: our generation it answered
  std::deque<Wait> waits_;          // generation and deadline never decrease along it
  uint64_t marked_ = 0;             // the last generation sent in a mark
  // The hub's side.
  uint64_t round_ = 0;               // the last round sent
  std::vector<uint64_t> round_applied_;  // by peer
  std::deque<Round> rounds_;         // sent, not yet answered by every peer
};

}  // namespace tcpms::routing
