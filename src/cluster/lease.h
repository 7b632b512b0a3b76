// Lease bookkeeping: which nodes are alive, and when this node must refresh its own lease.
//
// A node's lease is the Redis key "<prefix>node:<name>" set with a TTL of lease_ms, and the
// same TTL on its route and client sets; the node refreshes all three every lease_ms / 3. A
// node that dies stops refreshing, so Redis itself expires its routes and registry entries:
// nobody has to clean up after it. Other nodes learn who is alive from a scan of the node
// keys at each refresh: a node missing from a scan lost its lease and is dropped at once.
//
// Own lease: if no refresh succeeded for lease_ms (Redis unreachable or slow), this node's
// keys may be gone, so the next successful connection rewrites them all (`must_rebuild`).
//
// Thread rules: not thread-safe; owned by RedisRouter's command thread. Times are
// milliseconds on any monotonic clock, passed in (so tests choose them).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace tcpms::cluster {

class LeaseTable {
 public:
  LeaseTable(std::string self, uint64_t lease_ms);

  uint64_t lease_ms() const noexcept { return lease_ms_; }
  uint64_t refresh_period_ms() const noexcept;

  // --- own lease ----------------------------------------------------------------------------
  bool refresh_due(uint64_t now_ms) const noexcept { return now_ms >= next_refresh_ms_; }
  uint64_t next_refresh_ms() const noexcept { return next_refresh_ms_; }
  // A refresh (or a full rebuild) was acknowledged by Redis at `now_ms`.
  void refreshed(uint64_t now_ms) noexcept;
  // A refresh could not be made: try again soon, not a whole period later.
  void refresh_failed(uint64_t now_ms) noexcept;
  // True when our keys may have expired in Redis since the last refresh.
  bool must_rebuild(uint64_t now_ms) const noexcept;

  // --- other nodes --------------------------------------------------------------------------
  struct Change {
    std::vector<std::string> joined;
    std::vector<std::string> left;
  };
  // The node names a scan found (ours among them or not): who joined and who left.
  Change apply_scan(const std::vector<std::string>& alive);
  // A node announced itself (hello): alive until a scan says otherwise. True if new.
  bool saw(const std::string& node);
  // A node said goodbye. True if it was known.
  bool forget(const std::string& node);
  // Everything is unknown again (Redis lost): no node is believed alive.
  void clear() noexcept { alive_.clear(); }
  const std::set<std::string>& alive() const noexcept { return alive_; }
  bool is_alive(const std::string& node) const { return alive_.count(node) != 0; }

 private:
  std::string self_;
  uint64_t lease_ms_;
  uint64_t next_refresh_ms_ = 0;
  uint64_t last_ok_ms_ = 0;
  bool ever_ok_ = false;
  std::set<std::string> alive_;  // other nodes
};

}  // namespace tcpms::cluster
