// OfflineTimers: the deadlines of one loop's offline 5.0 sessions (session expiry and delayed
// wills), as an indexed binary min-heap of Session pointers.
//
// Why not a loop timer per session: EventLoop::run_after costs a map node and a
// std::function each, paid per offline client; here a session costs one heap slot (8 bytes)
// and the position kept in its SessionExtra, so re-arming or cancelling on reconnect is
// O(log n) with no allocation and no stale entry left behind. The handler arms one loop timer
// for the earliest deadline only.
//
// Thread rules: owned by one MqttHandler; its loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "broker/session.h"

namespace tcpms::broker {

class OfflineTimers {
 public:
  // The session's next deadline: the earlier of its expiry and its delayed will (0: none).
  static uint64_t due_of(const Session& s) noexcept;

  // Places `s` by due_of(s), or removes it when that is 0. `s` must have an extra.
  void arm(Session& s);
  // Removes `s` if it is in the heap (any session; no extra means not in it).
  void disarm(Session& s) noexcept;
  // Removes and returns the session whose deadline is the earliest if it is <= now_ms.
  Session* pop_due(uint64_t now_ms) noexcept;
  // The earliest deadline, 0 when empty.
  uint64_t next_due() const noexcept { return heap_.empty() ? 0 : due_of(*heap_.front()); }
  size_t size() const noexcept { return heap_.size(); }

 private:
  void place(size_t i) noexcept;  // after a key change at i: up or down
  void sift_up(size_t i) noexcept;
  void sift_down(size_t i) noexcept;
  void set(size_t i, Session* s) noexcept;
  void remove_at(size_t i) noexcept;

  std::vector<Session*> heap_;
};

}  // namespace tcpms::broker
