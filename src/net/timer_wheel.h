// A hashed timing wheel over intrusive hooks (net::TimerHook, embedded in each Connection).
//
// schedule/cancel are O(1) unlink/link with no allocation. Extending a deadline (every read
// on a connection with an idle timeout) is cheaper still: the owner just stores a later
// deadline_tick in the hook, and when the old bucket comes due the wheel sees the node is not
// yet due and moves it to the bucket of its real deadline. Deadlines further away than one
// turn of the wheel take the same path, so there is no overflow list.
//
// Not thread-safe: owned by one loop.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "tcpms/connection.h"

namespace tcpms::net {

// HookOf: callable (uint32_t id) -> TimerHook&.
template <typename HookOf>
class TimerWheel {
 public:
  static constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();

  // `buckets` must be a power of two.
  TimerWheel(uint32_t buckets, HookOf hook_of)
      : mask_(buckets - 1), heads_(buckets + 2, kNil), hook_of_(hook_of) {}

  // The last tick advance() reached: behind the owner's clock between advances.
  uint32_t now_tick() const noexcept { return current_; }
  size_t size() const noexcept { return size_; }
  bool scheduled(uint32_t id) { return hook_of_(id).bucket != 0; }

  // Moves an empty wheel's clock to `now_tick`. The wheel's clock is only what advance() was
  // last told, and an owner that slept with nothing scheduled may be far ahead of it: nothing
  // can expire on the way, and jumping saves the next advance() from walking every tick of the
  // sleep. Owners compute deadlines from their own clock, never from now_tick().
  void sync_if_empty(uint32_t now_tick) noexcept {
    if (size_ == 0) current_ = now_tick;
  }

  // (Re)schedules `id` to fire at `deadline_tick` (at the next tick if that has passed).
  void schedule(uint32_t id, uint32_t deadline_tick) {
    TimerHook& h = hook_of_(id);
    if (h.bucket != 0) unlink(id, h);
    if (static_cast<int32_t>(deadline_tick - current_) <= 0) deadline_tick = current_ + 1;
    h.deadline_tick = deadline_tick;
    link(id, h, bucket_of(deadline_tick));
  }

  void cancel(uint32_t id) {
    TimerHook& h = hook_of_(id);
    if (h.bucket != 0) unlink(id, h);
  }

  // Advances to `now_tick`, calling fire(id) for every node whose deadline has come. `fire`
  // may schedule or cancel any node, including ones not yet visited in this bucket.
  template <typename Fire>
  void advance(uint32_t now_tick, Fire&& fire) {
    if (size_ == 0) {
      current_ = now_tick;
      return;
    }
    while (static_cast<int32_t>(now_tick - current_) > 0) {
      ++current_;
      detach_bucket(bucket_of(current_));
      while (heads_[kDetached] != kNil) {
        uint32_t id = heads_[kDetached];
        TimerHook& h = hook_of_(id);
        unlink(id, h);
        if (static_cast<int32_t>(h.deadline_tick - current_) > 0) {
          link(id, h, bucket_of(h.deadline_tick));  // extended since it was scheduled
        } else {
          fire(id);
        }
      }
      if (size_ == 0) {
        current_ = now_tick;
        return;
      }
    }
  }

 private:
  static constexpr uint16_t kDetached = 1;  // bucket index of the list being expired
  uint16_t bucket_of(uint32_t tick) const noexcept {
    return static_cast<uint16_t>(2 + (tick & mask_));
  }

  void link(uint32_t id, TimerHook& h, uint16_t bucket) {
    h.bucket = bucket;
    h.prev = kNil;
    h.next = heads_[bucket];
    if (h.next != kNil) hook_of_(h.next).prev = id;
    heads_[bucket] = id;
    ++size_;
  }
  void unlink(uint32_t id, TimerHook& h) {
    if (h.prev != kNil) {
      hook_of_(h.prev).next = h.next;
    } else {
      heads_[h.bucket] = h.next;
    }
    if (h.next != kNil) hook_of_(h.next).prev = h.prev;
    h.bucket = 0;
    h.prev = h.next = kNil;
    --size_;
  }
  // Moves a whole bucket onto the detached list, so nodes re-linked into the same bucket
  // during expiry (deadline exactly one turn later) are not visited twice in one tick.
  void detach_bucket(uint16_t bucket) {
    uint32_t id = heads_[bucket];
    heads_[bucket] = kNil;
    heads_[kDetached] = id;
    for (; id != kNil; id = hook_of_(id).next) hook_of_(id).bucket = kDetached;
  }

  uint32_t mask_;
  uint32_t current_ = 0;
  size_t size_ = 0;
  std::vector<uint32_t> heads_;  // [0] unused (0 = "not scheduled"), [1] detached, [2..] buckets
  HookOf hook_of_;
};

}  // namespace tcpms::net
