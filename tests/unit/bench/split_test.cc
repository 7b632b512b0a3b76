// How tcpms-bench divides a run over processes and threads.
#include "split.h"

#include <gtest/gtest.h>

namespace tcpms::benchapp {
namespace {

TEST(SplitShare, CountsAddUpAndRangesAreContiguous) {
  for (int64_t total : {0, 1, 7, 30000, 1'000'001}) {
    for (int parts : {1, 2, 3, 7, 51}) {
      Share whole{100, total, 5000, 1000, false};
      int64_t sum = 0, next = 100;
      for (int i = 0; i < parts; ++i) {
        Share s = split_share(whole, parts, i);
        EXPECT_EQ(s.offset, next) << total << "/" << parts << " part " << i;
        EXPECT_GE(s.count, total / parts);
        EXPECT_LE(s.count, total / parts + 1);
        sum += s.count;
        next = s.offset + s.count;
      }
      EXPECT_EQ(sum, total);
    }
  }
}

TEST(SplitShare, TwoLevelsMatchOneLevel) {
  // Processes then threads cover the same global numbers as one split would.
  Share whole{0, 30001, 0, 1000, false};
  int64_t next = 0;
  for (int p = 0; p < 2; ++p) {
    Share proc = split_share(whole, 2, p);
    for (int t = 0; t < 3; ++t) {
      Share th = split_share(proc, 3, t);
      EXPECT_EQ(th.offset, next);
      next += th.count;
    }
  }
  EXPECT_EQ(next, 30001);
}

TEST(SplitShare, RateAndPendingAreDivided) {
  Share s = split_share(Share{0, 10, 50000, 1000, true}, 4, 3);
  EXPECT_DOUBLE_EQ(s.rate, 12500);
  EXPECT_EQ(s.max_pending, 250);
  EXPECT_TRUE(s.unlimited);
  EXPECT_EQ(split_share(Share{0, 10, 0, 3, false}, 4, 0).max_pending, 1);  // never 0
}

TEST(ProcessesNeeded, FollowsTheDescriptorLimit) {
  EXPECT_EQ(processes_needed(1000, 20000), 1);
  EXPECT_EQ(processes_needed(20000 - kReservedFds, 20000), 1);
  EXPECT_EQ(processes_needed(20000 - kReservedFds + 1, 20000), 2);
  EXPECT_EQ(processes_needed(30000, 20000), 2);
  EXPECT_EQ(processes_needed(1'000'000, 20000), 51);  // 19,900 per process
  EXPECT_EQ(processes_needed(1'000'000, 0), 1);         // unknown limit
}

}  // namespace
}  // namespace tcpms::benchapp
