// LocalInterest: this process's topic filters as a counting Bloom filter, the column the other
// processes keep of it (remote_interest.h) and the updates that keep their copy current.
//
// Each distinct filter of each loop's topic tree counts once in the slots of its key
// (interest_keys.h), so two loops with the same filter need two removals before its bits
// clear; a counter that reaches 255 stays set (a false positive at worst, never a miss). The
// filters themselves are not kept: a process with a million filters holds
// `bits_per_filter` bytes of counters for each, nothing else.
//
// Size: the bitmap grows (never shrinks) to keep about `bits_per_filter` slots per filter,
// doubling each time. The counters cannot be re-hashed without the filters, so a rebuild asks
// every loop to walk its tree once (begin_rebuild, add_walked, walk_done): a loop's events
// after its walk go to both bitmaps, so none is lost or counted twice, and the new bitmap
// replaces the old when the last loop is done. Peers learn the new size from the snapshot
// that follows; the largest size any peer uses is everyone's size (see remote_interest.h).
//
// Thread rules: every method may be called from any thread (one mutex); a loop's add/remove
// and its walk run on that loop's thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tcpms::routing {

struct InterestOptions {
  uint32_t min_slots = 1u << 12;
  uint32_t bits_per_filter = 10;
  uint8_t hashes = 3;
};

class LocalInterest {
 public:
  LocalInterest(InterestOptions options, uint32_t loops);

  // A loop's tree gained its first subscriber on `filter` / lost its last.
  void add(std::string_view filter, uint32_t loop);
  void remove(std::string_view filter, uint32_t loop);

  uint32_t slots() const;
  // The size the bitmap should have for what it counts now; larger than slots(): rebuild.
  uint32_t wanted_slots() const;
  uint64_t filters() const;  // filter-loop pairs counted

  // --- rebuild at a larger size ---
  bool begin_rebuild(uint32_t slots);  // false if one is under way or `slots` is not larger
  void add_walked(std::string_view filter);
  // True when `loop` was the last one: the new bitmap is in place and a snapshot is due.
  bool walk_done(uint32_t loop);
  bool rebuilding() const;

  // Each change a peer must hear of (a bit or the shapes changed) gets the next number; a
  // SUBACK waits until the peers have applied the update that carries its number.
  uint64_t generation() const;

  // The update every peer should get, as an encoded frame: an InterestSnapshot after a
  // rebuild, else an InterestDelta of the slots that changed; empty when nothing did.
  // `covers`: the generation it (with the updates before it) brings a peer up to.
  std::string take_update(uint64_t* covers = nullptr);
  // The whole bitmap now, as an InterestSnapshot frame (for a peer that just came up).
  std::string snapshot(uint64_t* covers = nullptr) const;

 private:
  struct Counts {
    uint32_t slots = 0;
    std::vector<uint8_t> counts;
    std::map<uint64_t, uint32_t> shapes;  // wildcard shape -> filters using it
    // The shapes as frames carry them (n x u64), and whether some did not fit.
    std::string shape_bytes(bool& overflow) const;
    // Returns true when slot `s`'s bit flipped (0 <-> non-zero).
    bool bump(uint32_t s, int delta) noexcept;
  };
  // True when a peer's copy must change (a tracked bit flipped, or the shapes).
  bool apply(Counts& c, std::string_view filter, int delta, bool track);
  std::string snapshot_locked() const;

  const InterestOptions options_;
  const uint32_t loops_;
  mutable std::mutex mu_;
  Counts current_;
  uint64_t filters_ = 0;
  uint64_t generation_ = 0;
  // Slots whose bit flipped since the last update (a bitmap and a list).
  std::vector<uint64_t> dirty_bits_;
  std::vector<uint32_t> dirty_;
  std::string sent_shapes_;  // as last sent, so a change of shapes alone is sent too
  bool snapshot_due_ = false;
  // A rebuild under way.
  bool rebuilding_ = false;
  Counts next_;
  std::vector<bool> walked_;
  uint32_t walks_left_ = 0;
};

}  // namespace tcpms::routing
