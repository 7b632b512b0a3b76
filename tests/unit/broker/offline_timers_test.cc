// OfflineTimers: the heap of offline sessions' deadlines (expiry, delayed will).
#include "broker/offline_timers.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

namespace tcpms::broker {
namespace {

std::unique_ptr<Session> session(uint64_t expires, uint64_t will = 0) {
  auto s = std::make_unique<Session>("c");
  s->extra_ref().expires_at_ms = expires;
  s->extra->will_at_ms = will;
  return s;
}

TEST(OfflineTimers, PopsInDeadlineOrderTheEarlierOfExpiryAndWill) {
  OfflineTimers t;
  auto a = session(300), b = session(100), c = session(500, 50), d = session(0, 200);
  for (Session* s : {a.get(), b.get(), c.get(), d.get()}) t.arm(*s);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.next_due(), 50u);
  EXPECT_EQ(t.pop_due(49), nullptr);  // nothing due yet
  EXPECT_EQ(t.pop_due(1000), c.get());
  EXPECT_EQ(t.pop_due(1000), b.get());
  EXPECT_EQ(t.pop_due(1000), d.get());
  EXPECT_EQ(t.pop_due(1000), a.get());
  EXPECT_EQ(t.pop_due(1000), nullptr);
  EXPECT_EQ(a->extra->timer_slot, 0u);  // out of the heap
}

TEST(OfflineTimers, DisarmAndRearmLeaveNoStaleEntry) {
  OfflineTimers t;
  auto a = session(100), b = session(200), c = session(300);
  for (Session* s : {a.get(), b.get(), c.get()}) t.arm(*s);
  t.disarm(*a);  // reconnected
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.next_due(), 200u);
  t.disarm(*a);  // twice is harmless
  c->extra->expires_at_ms = 50;  // re-armed earlier
  t.arm(*c);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.pop_due(1000), c.get());
  b->extra->expires_at_ms = 0;  // nothing left to wait for: arm removes it
  t.arm(*b);
  EXPECT_EQ(t.size(), 0u);
  Session plain("p");  // no extra: never in the heap
  t.disarm(plain);
}

TEST(OfflineTimers, RandomOperationsKeepHeapOrder) {
  std::mt19937 rng(7);
  OfflineTimers t;
  std::vector<std::unique_ptr<Session>> all;
  for (int i = 0; i < 500; ++i) all.push_back(session(1 + rng() % 10000));
  for (auto& s : all) t.arm(*s);
  for (int i = 0; i < 2000; ++i) {
    Session& s = *all[rng() % all.size()];
    if (rng() % 3 == 0) {
      t.disarm(s);
    } else {
      s.extra->expires_at_ms = 1 + rng() % 10000;
      t.arm(s);
    }
  }
  uint64_t last = 0;
  size_t n = t.size();
  for (size_t i = 0; i < n; ++i) {
    Session* s = t.pop_due(~0ull);
    ASSERT_NE(s, nullptr);
    EXPECT_GE(OfflineTimers::due_of(*s), last);
    last = OfflineTimers::due_of(*s);
  }
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace tcpms::broker
