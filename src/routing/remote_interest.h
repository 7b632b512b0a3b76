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
// Updates (snapshots, deltas, forget) come from the transport's receiving thread(s) under one
// mutex; match() runs on loop threads with no lock: rows are atomics, and a table that is
// replaced is zeroed (its pages given back) but never unmapped while the object lives, so a
// reader that still holds it reads zeros at worst. A snapshot sets its new bits before it
// clears old ones, so a filter present in both is never missed.
//
// Thread rules: match() and largest_slots() from any thread, lock-free; the rest from any
// thread, serialized by a mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "routing/frame.h"
#include "routing/local_interest.h"
#include "routing/peer_set.h"

namespace tcpms::routing {

class RemoteInterest {
 public:
  RemoteInterest(PeerId self, uint32_t peer_slots, uint8_t hashes);
  ~RemoteInterest();
  RemoteInterest(const RemoteInterest&) = delete;
  RemoteInterest& operator=(const RemoteInterest&) = delete;

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
  uint32_t largest_slots() const noexcept { return largest_.load(std::memory_order_relaxed); }
  // Memory the tables hold (their rows), for metrics.
  size_t table_bytes() const;

 private:
  struct Table;
  Table* table_for(uint32_t slots);  // under mu_; null if none can take that size
  void remove_from(Table& t, PeerId p);
  // The peer's shapes join the union every match() tries; true if they all fit.
  bool add_shapes(const ShapeList& shapes);  // under mu_
  void set_everything(PeerId p, bool on);

  const PeerId self_;
  const uint32_t peer_slots_;
  const uint32_t words_;  // per row
  const uint8_t hashes_;
  std::mutex mu_;
  std::atomic<Table*> tables_[2] = {nullptr, nullptr};
  std::vector<std::unique_ptr<Table>> all_tables_;  // including retired ones (zeroed)
  std::vector<uint8_t> table_of_;                   // by peer: 0, 1, or kNone (under mu_)
  std::vector<std::string> peer_shapes_;            // by peer: its shapes as frames carry them
  std::vector<uint8_t> peer_flags_;                 // by peer: its last frame's flags
  // Every wildcard shape any peer has announced, append-only (so a reader never sees one
  // vanish): a publish looks up one key per shape here. Shapes no longer used stay and cost a
  // lookup that finds nothing.
  static constexpr uint32_t kMaxShapes = 256;
  std::atomic<uint64_t> shapes_[kMaxShapes] = {};
  std::atomic<uint32_t> shape_count_{0};
  std::unique_ptr<std::atomic<uint64_t>[]> everything_;  // peers that get every publish
  std::atomic<uint32_t> largest_{0};
};

}  // namespace tcpms::routing
