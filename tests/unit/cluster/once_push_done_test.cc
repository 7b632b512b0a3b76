// OncePushDone: a push's answer runs exactly once, whatever path the operation takes.
#include <vector>

#include <gtest/gtest.h>

#include "cluster/redis_router.h"

namespace tcpms::cluster {
namespace {

using Outcome = broker::Router::PushOutcome;

TEST(OncePushDone, RunsOnceWithTheFirstAnswer) {
  std::vector<Outcome> got;
  {
    OncePushDone d([&](Outcome o) { got.push_back(o); });
    EXPECT_TRUE(d.armed());
    d(Outcome::kHeld);
    d(Outcome::kNoSuchClient);
    EXPECT_FALSE(d.armed());
  }
  EXPECT_EQ(got, std::vector<Outcome>{Outcome::kHeld});
}

TEST(OncePushDone, DroppedUnansweredSaysUnknown) {
  std::vector<Outcome> got;
  { OncePushDone d([&](Outcome o) { got.push_back(o); }); }
  EXPECT_EQ(got, std::vector<Outcome>{Outcome::kUnknown});
}

TEST(OncePushDone, MovesCarryTheCallbackNotACopy) {
  std::vector<Outcome> got;
  {
    OncePushDone a([&](Outcome o) { got.push_back(o); });
    OncePushDone b(std::move(a));
    EXPECT_FALSE(a.armed());
    std::vector<OncePushDone> queue;
    queue.push_back(std::move(b));
    queue.reserve(64);  // reallocation moves it again
    queue.back()(Outcome::kNoSuchClient);
  }
  EXPECT_EQ(got, std::vector<Outcome>{Outcome::kNoSuchClient});
}

TEST(OncePushDone, DisarmedNeverRuns) {
  int calls = 0;
  {
    OncePushDone d([&](Outcome) { ++calls; });
    d.disarm();
  }
  EXPECT_EQ(calls, 0);
}

TEST(OncePushDone, AssigningOverAnArmedOneAnswersIt) {
  std::vector<int> got;
  OncePushDone a([&](Outcome) { got.push_back(1); });
  a = OncePushDone([&](Outcome) { got.push_back(2); });
  a(Outcome::kHeld);
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace tcpms::cluster
