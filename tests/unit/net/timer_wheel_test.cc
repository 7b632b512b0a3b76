// TimerWheel over plain hooks: O(1) schedule/cancel, lazy extension, deadlines past one turn,
// and expiry callbacks that modify other nodes.
#include "net/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace tcpms::net {
namespace {

struct VecHooks {
  std::vector<TimerHook>* hooks;
  TimerHook& operator()(uint32_t id) const noexcept { return (*hooks)[id]; }
};

class TimerWheelTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kBuckets = 8;
  std::vector<TimerHook> hooks{64};
  TimerWheel<VecHooks> wheel{kBuckets, VecHooks{&hooks}};
  std::vector<uint32_t> fired;

  void advance(uint32_t tick) {
    wheel.advance(tick, [this](uint32_t id) { fired.push_back(id); });
  }
  // Advances one tick at a time and records the tick each id fired at.
  std::vector<std::pair<uint32_t, uint32_t>> run_until(uint32_t last) {
    std::vector<std::pair<uint32_t, uint32_t>> at;
    for (uint32_t t = wheel.now_tick() + 1; t <= last; ++t) {
      wheel.advance(t, [&](uint32_t id) { at.emplace_back(id, t); });
    }
    return at;
  }
};

TEST_F(TimerWheelTest, FiresAtItsDeadlineNotBefore) {
  wheel.schedule(1, 3);
  EXPECT_TRUE(wheel.scheduled(1));
  EXPECT_EQ(wheel.size(), 1u);
  advance(2);
  EXPECT_TRUE(fired.empty());
  advance(3);
  EXPECT_EQ(fired, std::vector<uint32_t>{1});
  EXPECT_FALSE(wheel.scheduled(1));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST_F(TimerWheelTest, CancelledNodeNeverFires) {
  wheel.schedule(1, 3);
  wheel.schedule(2, 3);
  wheel.cancel(1);
  wheel.cancel(1);  // twice is harmless
  EXPECT_FALSE(wheel.scheduled(1));
  advance(10);
  EXPECT_EQ(fired, std::vector<uint32_t>{2});
}

TEST_F(TimerWheelTest, RescheduleMovesTheNode) {
  wheel.schedule(1, 3);
  wheel.schedule(1, 5);
  EXPECT_EQ(wheel.size(), 1u);
  auto at = run_until(10);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0], std::make_pair(1u, 5u));
}

TEST_F(TimerWheelTest, PastDeadlineFiresOnTheNextTick) {
  advance(10);
  wheel.schedule(1, 4);
  auto at = run_until(20);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0], std::make_pair(1u, 11u));
}

TEST_F(TimerWheelTest, LazyExtensionDefersExpiryWithoutRelinking) {
  wheel.schedule(1, 3);
  // What a read does on a connection with an idle timeout: store a later deadline only.
  hooks[1].deadline_tick = 6;
  auto at = run_until(12);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0], std::make_pair(1u, 6u));
}

TEST_F(TimerWheelTest, LazyExtensionPastOneTurn) {
  wheel.schedule(1, 2);
  hooks[1].deadline_tick = 2 + 3 * kBuckets + 1;  // several turns later, another bucket
  auto at = run_until(40);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0], std::make_pair(1u, 2 + 3 * kBuckets + 1));
}

TEST_F(TimerWheelTest, DeadlinesPastOneTurnShareBucketsButFireOnTime) {
  // 4, 12 and 28 all hash to the same bucket of an 8-bucket wheel.
  wheel.schedule(1, 4);
  wheel.schedule(2, 4 + kBuckets);
  wheel.schedule(3, 4 + 3 * kBuckets);
  auto at = run_until(40);
  ASSERT_EQ(at.size(), 3u);
  EXPECT_EQ(at[0], std::make_pair(1u, 4u));
  EXPECT_EQ(at[1], std::make_pair(2u, 12u));
  EXPECT_EQ(at[2], std::make_pair(3u, 28u));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST_F(TimerWheelTest, JumpingManyTicksFiresEverythingDueOnce) {
  for (uint32_t id = 1; id <= 40; ++id) wheel.schedule(id, id);  // ticks 1..40
  advance(25);
  EXPECT_EQ(fired.size(), 25u);
  std::vector<uint32_t> sorted = fired;
  std::sort(sorted.begin(), sorted.end());
  for (uint32_t i = 0; i < 25; ++i) EXPECT_EQ(sorted[i], i + 1);
  EXPECT_EQ(wheel.size(), 15u);
  advance(1000);
  EXPECT_EQ(fired.size(), 40u);
}

TEST_F(TimerWheelTest, FireMayCancelAndRescheduleOtherNodesInTheSameBucket) {
  wheel.schedule(1, 5);
  wheel.schedule(2, 5);
  wheel.schedule(3, 5);
  wheel.schedule(4, 5);
  std::vector<std::pair<uint32_t, uint32_t>> at;
  bool first = true;
  for (uint32_t t = 1; t <= 12; ++t) {
    wheel.advance(t, [&](uint32_t id) {
      at.emplace_back(id, t);
      if (first) {
        first = false;
        // Whichever fires first cancels one sibling and moves another (all are still on the
        // list being expired), and reschedules itself exactly one turn later, into the bucket
        // being expired: none of this may fire twice or be lost.
        uint32_t others[3];
        int n = 0;
        for (uint32_t o = 1; o <= 4; ++o)
          if (o != id) others[n++] = o;
        wheel.cancel(others[0]);
        wheel.schedule(others[1], 7);
        wheel.schedule(id, t + kBuckets);
      }
    });
  }
  // First at 5; others[2] at 5; others[1] at 7; the first again at 13 (not yet); others[0]
  // never.
  ASSERT_EQ(at.size(), 3u);
  EXPECT_EQ(at[0].second, 5u);
  EXPECT_EQ(at[1].second, 5u);
  EXPECT_EQ(at[2].second, 7u);
  EXPECT_NE(at[0].first, at[1].first);
  EXPECT_EQ(wheel.size(), 1u) << "the self-rescheduled node waits for tick 13";
  auto later = run_until(13);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0], std::make_pair(at[0].first, 13u));
}

TEST_F(TimerWheelTest, FireMaySchedulesNewNodesForTheCurrentTick) {
  wheel.schedule(1, 3);
  std::vector<std::pair<uint32_t, uint32_t>> at;
  for (uint32_t t = 1; t <= 6; ++t) {
    wheel.advance(t, [&](uint32_t id) {
      at.emplace_back(id, t);
      if (id == 1) wheel.schedule(2, t);  // "now": must wait for the next tick
    });
  }
  ASSERT_EQ(at.size(), 2u);
  EXPECT_EQ(at[1], std::make_pair(2u, 4u));
}

TEST_F(TimerWheelTest, AnEmptyWheelJumpsToTheOwnersClockAndAFullOneDoesNot) {
  wheel.sync_if_empty(1000);  // the owner slept with nothing scheduled
  EXPECT_EQ(wheel.now_tick(), 1000u);
  wheel.schedule(1, 1003);
  wheel.sync_if_empty(2000);  // not empty: its nodes must still be visited tick by tick
  EXPECT_EQ(wheel.now_tick(), 1000u);
  advance(1002);
  EXPECT_TRUE(fired.empty());
  advance(1003);
  EXPECT_EQ(fired, std::vector<uint32_t>{1});
}

}  // namespace
}  // namespace tcpms::net
