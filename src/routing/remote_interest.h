// RemoteInterest: the other processes' filters as Bloom bitmaps (their LocalInterest columns),
// kept so that a publish decides locally, with no round trip, which peers may have a
// subscriber for its topic.
//
// Layout, for a cost that does not grow with the number of peers: one table of `slots` rows,
// each row a bitset over the peers (one 64-bit word per 64 peers), so a topic key is looked up
// with `hashes` row reads whatever the number of peers, and the answer is the AND of the rows
// (a peer is a candidate when all its bits are set), then the OR over the topic's keys.
// Memory: slots x 8 bytes per 64 peers; with fewer than 64 peers a row is the peer count
// rounded up to a power of two bits (at least 8), so 8 processes pay 1 byte a slot. Peers of a balanced server have about the same number
// of filters, so one size suits them all; a peer that grows sends a snapshot at its new size and
// the others follow it (the largest size seen is everyone's). While sizes differ, the peers
// of the other size sit in a second table (each table holds the peers of its size); a third
// size meanwhile makes the smallest table's peers "send everything" until they resend.
//
// Wildcard filters are found through their shapes (interest_keys.h): the union of the
// shapes all peers announce is what a publish tries. A peer with more shapes than a frame
// carries (or than the union holds) gets every publish: correct, and only as costly as
// broadcast for that pathological case.
//
// Where the tables live (interest_region.h): worker processes share one region, and there
// each process writes only its own column (apply(self, ...) with its own updates, before it
// sends them) and reads everyone's, so one copy serves them all; frames from the others change
// nothing here. A cluster node keeps a private region and writes the other nodes' columns
// from their frames, its own never. Either way a column has one writer.
//
// Updates (snapshots, deltas, forget) are serialized by the region's lock; match() runs on
// loop threads with no lock: rows are atomics, and a table that is replaced is zeroed (its
// pages given back) but never unmapped while the region lives, so a reader that still holds it
// reads zeros at worst. A snapshot sets its new bits before it clears old ones, so a filter
// present in both is never missed.
//
// Thread rules: match(), has_interest() and largest_slots() from any thread, lock-free; a
// shared column's writer applies its deltas without the lock unless they bring a new shape;
// the rest from any thread, serialized by the region's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "routing/frame.h"
#include "routing/interest_region.h"
#include "routing/local_interest.h"
#include "routing/peer_set.h"

namespace tcpms::routing {

class RemoteInterest {
 public:
  // With `shared`, the tables are the region's, shared with the other worker processes (made
  // by shared_region() before they were forked), and this process's column is cleared: a
  // process that starts again writes it anew. Without, they are in a private region.
  RemoteInterest(PeerId self, uint32_t peer_slots, uint8_t hashes, InterestRegion* shared = nullptr);
  ~RemoteInterest();
  RemoteInterest(const RemoteInterest&) = delete;
  RemoteInterest& operator=(const RemoteInterest&) = delete;

  // A region for worker processes to share, to be made before they are forked.
  static std::unique_ptr<InterestRegion> shared_region(std::string* error);

  // True when the columns are shared between processes: each writes its own (`self`'s)
  // and the others' frames are not applied.
  bool shared() const noexcept { return region_->shared(); }

  // A column's snapshot or delta, from its writer (see above); others are ignored.
  void apply(PeerId from, const InterestSnapshot& s);
  // A delta at another size than the peer's column is dropped (a snapshot at the new size
  // follows it); false then.
  bool apply(PeerId from, const InterestDelta& d);
  // The peer restarted or left: it has no filters until its next snapshot.
  void forget(PeerId from);
  // The peer's column is unknown (its snapshot was lost or could not be kept): it gets every
  // publish until its next snapshot.
  void send_everything(PeerId from);

  // The peer's column as an InterestSnapshot frame (empty if unknown): the interest hub sends
  // these to a peer that comes up (peer_router.h).
  std::string column_snapshot(PeerId p);
  // True once the peer's column is known (a snapshot of it was applied, or it gets every
  // publish): a worker taking over in an upgrade waits for every peer's (docs/upgrade.md).
  bool knows(PeerId p);
  // True if the peer's column has any bit set, or it gets every publish (metrics: a scan of
  // the column, not for the publish path).
  bool has_interest(PeerId p);
  // Adds to `out` every peer that may have a filter matching `topic`.
  void match(std::string_view topic, PeerSet& out) const;
  // The largest bitmap any peer uses (the size every process grows to).
  uint32_t largest_slots() const noexcept;
  // Memory the tables hold (their rows), for metrics. Shared tables are counted by peer 0
  // alone, so that the sum over the workers is what they hold.
  size_t table_bytes() const;

 private:
  struct Table;
  struct State;
  // Whether this process writes `p`'s column.
  bool writes(PeerId p) const noexcept { return p < peer_slots_ && (shared() ? p == self_ : p != self_); }
  Table* table_for(uint32_t slots);  // under the lock; null if none can be made
  // Takes `p` out of the members of the table at `place`, retiring it if it is left empty;
  // returns it unless retired (its bits of `p` still to clear). Under the lock.
  Table* leave(uint8_t place, PeerId p);
  // Clears `p`'s bits in `t` (the column's writer; no lock needed).
  void clear_column(Table& t, PeerId p);
  void retire(Table& t);
  // The peer's shapes join the union every match() tries; true if they all fit.
  bool add_shapes(const ShapeList& shapes);  // under the lock
  void keep_shapes(PeerId p, const ShapeList& shapes, uint8_t flags);  // under the lock
  void set_everything(PeerId p, bool on);
  bool everything(PeerId p) const;
  // True if every shape in `shapes` is in the union already.
  bool shapes_known(const ShapeList& shapes) const;
  void forget_locked(PeerId p);

  const PeerId self_;
  const uint32_t peer_slots_;
  const uint32_t words_;  // per row
  const uint8_t hashes_;
  std::unique_ptr<InterestRegion> own_region_;  // when not shared
  InterestRegion* const region_;
  State* const state_;  // in the region's header
};

}  // namespace tcpms::routing
