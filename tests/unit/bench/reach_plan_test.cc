// mqtt-reach's shared plan: topics, the random push targets every process must agree on, and
// the reports loops exchange (src/apps/bench/reach_plan.h).
#include "reach_plan.h"

#include <gtest/gtest.h>

#include <set>

namespace tcpms::benchapp {
namespace {

TEST(ReachPlan, TopicsAreTheClientsOwn) {
  EXPECT_EQ(reach_topic("tb1f-7"), "reach/tb1f-7");
  EXPECT_EQ(reach_push_topic("tb1f-7"), "reach/tb1f-7/push");
}

TEST(ReachPlan, PushTargetsAreKDistinctSortedAndInRange) {
  const auto t = choose_push_targets(1234, 1'000'000, 10'000);
  ASSERT_EQ(t.size(), 10'000u);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  EXPECT_EQ(std::set<uint64_t>(t.begin(), t.end()).size(), t.size());
  EXPECT_LT(t.back(), 1'000'000u);
  // Spread over the range, not bunched at one end (Floyd's draws are uniform).
  EXPECT_GT(count_in_range(t, 0, 500'000), 4'000u);
  EXPECT_GT(count_in_range(t, 500'000, 500'000), 4'000u);
}

TEST(ReachPlan, EveryProcessDrawsTheSameTargetsFromTheSameSeed) {
  EXPECT_EQ(choose_push_targets(99, 50'000, 1'000), choose_push_targets(99, 50'000, 1'000));
  EXPECT_NE(choose_push_targets(99, 50'000, 1'000), choose_push_targets(100, 50'000, 1'000));
}

TEST(ReachPlan, MoreTargetsThanClientsTakesEveryClient) {
  EXPECT_EQ(choose_push_targets(1, 5, 10), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(choose_push_targets(1, 5, 0).empty());
  EXPECT_TRUE(choose_push_targets(1, 0, 3).empty());
}

TEST(ReachPlan, CountInRangeIsHalfOpen) {
  const std::vector<uint64_t> t{2, 5, 9, 10};
  EXPECT_EQ(count_in_range(t, 0, 5), 1u);
  EXPECT_EQ(count_in_range(t, 5, 5), 2u);
  EXPECT_EQ(count_in_range(t, 10, 1), 1u);
  EXPECT_EQ(count_in_range(t, 11, 100), 0u);
}

TEST(ReachPlan, ReportRoundTrips) {
  const ReachReport r{19'000, 18'999, 123'456'789'000ull, 123'999'000'000ull};
  EXPECT_EQ(parse_report(format_report(r)), r);
}

TEST(ReachPlan, MalformedReportsAreRefused) {
  EXPECT_FALSE(parse_report(""));
  EXPECT_FALSE(parse_report("1 2 3"));
  EXPECT_FALSE(parse_report("1 2 3 4 5"));
  EXPECT_FALSE(parse_report("1  2 3 4"));
  EXPECT_FALSE(parse_report("a 2 3 4"));
  EXPECT_FALSE(parse_report("1 2 3 4 "));
  EXPECT_FALSE(parse_report("5 6 0 0"));  // more delivered than clients
}

}  // namespace
}  // namespace tcpms::benchapp
