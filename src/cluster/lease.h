// Lease schedule: when this node must refresh its own lease.
//
// A node's lease is the Redis key "<prefix>node:<name>" set with a TTL of lease_ms (and the
// same TTL on its stream); the node refreshes it every lease_ms / 3. A node that dies stops
// refreshing, so Redis itself expires its keys: nobody has to clean up after it. Who else is
// alive is the transport's scan of the lease keys (redis_transport.h).
//
// If no refresh succeeded for lease_ms (Redis unreachable or slow), this node's lease may be
// gone and the other nodes may have taken it down, so the next successful connection joins
// again (`must_rebuild`).
//
// Thread rules: not thread-safe; owned by RedisTransport's command thread. Times are
// milliseconds on any monotonic clock, passed in (so tests choose them).
#pragma once

#include <cstdint>

namespace tcpms::cluster {

class LeaseTable {
 public:
  explicit LeaseTable(uint64_t lease_ms);

  uint64_t lease_ms() const noexcept { return lease_ms_; }
  uint64_t refresh_period_ms() const noexcept;

  bool refresh_due(uint64_t now_ms) const noexcept { return now_ms >= next_refresh_ms_; }
  uint64_t next_refresh_ms() const noexcept { return next_refresh_ms_; }
  // A refresh (or a full rebuild) was acknowledged by Redis at `now_ms`.
  void refreshed(uint64_t now_ms) noexcept;
  // A refresh could not be made: try again soon, not a whole period later.
  void refresh_failed(uint64_t now_ms) noexcept;
  // True when our keys may have expired in Redis since the last refresh.
  bool must_rebuild(uint64_t now_ms) const noexcept;

 private:
  uint64_t lease_ms_;
  uint64_t next_refresh_ms_ = 0;
  uint64_t last_ok_ms_ = 0;
  bool ever_ok_ = false;
};

}  // namespace tcpms::cluster
