#include "broker/offline_timers.h"

#include <utility>

namespace tcpms::broker {

uint64_t OfflineTimers::due_of(const Session& s) noexcept {
  if (!s.extra) return 0;
  const uint64_t a = s.extra->expires_at_ms, b = s.extra->will_at_ms;
  if (a == 0) return b;
  if (b == 0) return a;
  return a < b ? a : b;
}

void OfflineTimers::arm(Session& s) {
  SessionExtra& x = *s.extra;
  if (due_of(s) == 0) {
    disarm(s);
    return;
  }
  if (x.timer_slot == 0) {
    heap_.push_back(&s);
    x.timer_slot = static_cast<uint32_t>(heap_.size());
    sift_up(heap_.size() - 1);
    return;
  }
  place(x.timer_slot - 1);
}

void OfflineTimers::disarm(Session& s) noexcept {
  if (!s.extra || s.extra->timer_slot == 0) return;
  remove_at(s.extra->timer_slot - 1);
}

Session* OfflineTimers::pop_due(uint64_t now_ms) noexcept {
  if (heap_.empty() || due_of(*heap_.front()) > now_ms) return nullptr;
  Session* s = heap_.front();
  remove_at(0);
  return s;
}

void OfflineTimers::set(size_t i, Session* s) noexcept {
  heap_[i] = s;
  s->extra->timer_slot = static_cast<uint32_t>(i + 1);
}

void OfflineTimers::remove_at(size_t i) noexcept {
  heap_[i]->extra->timer_slot = 0;
  Session* last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  set(i, last);
  place(i);
}

void OfflineTimers::place(size_t i) noexcept {
  if (i > 0 && due_of(*heap_[i]) < due_of(*heap_[(i - 1) / 2]))
    sift_up(i);
  else
    sift_down(i);
}

void OfflineTimers::sift_up(size_t i) noexcept {
  Session* s = heap_[i];
  const uint64_t key = due_of(*s);
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (due_of(*heap_[parent]) <= key) break;
    set(i, heap_[parent]);
    i = parent;
  }
  set(i, s);
}

void OfflineTimers::sift_down(size_t i) noexcept {
  Session* s = heap_[i];
  const uint64_t key = due_of(*s);
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && due_of(*heap_[child + 1]) < due_of(*heap_[child])) ++child;
    if (key <= due_of(*heap_[child])) break;
    set(i, heap_[child]);
    i = child;
  }
  set(i, s);
}

}  // namespace tcpms::broker
