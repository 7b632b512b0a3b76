// InterestAcks: when a held SUBACK may go (every peer that counts has applied its filter's
// update), directly and through the hub.
#include "routing/interest_acks.h"

#include <gtest/gtest.h>

namespace tcpms::routing {
namespace {

struct Resumed {
  int n = 0;
  InterestAcks::Resume make() {
    return [this] { ++n; };
  }
};

void run(std::vector<InterestAcks::Resume> rs) {
  for (auto& r : rs) r();
}

TEST(InterestAcks, DirectlyAWaitEndsWhenEveryPeerThatIsUpHasAnswered) {
  InterestAcks a(0, 3, kNoPeer);
  Resumed r;
  EXPECT_FALSE(a.hold(1, 1000, r.make())) << "no peer up: nothing to wait for";
  run(a.peer_up(1, 0));
  run(a.peer_up(2, 0));
  EXPECT_FALSE(a.hold(0, 1000, r.make())) << "generation 0 is known everywhere";
  ASSERT_TRUE(a.hold(3, 1000, r.make()));
  EXPECT_EQ(a.mark_due(3), std::optional<uint64_t>(3));
  EXPECT_EQ(a.mark_due(3), std::nullopt) << "marked once";
  run(a.applied(1, 3));
  EXPECT_EQ(r.n, 0) << "peer 2 has not answered";
  run(a.applied(2, 2));
  EXPECT_EQ(r.n, 0) << "peer 2 answered an older generation";
  run(a.applied(2, 3));
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(a.held(), 0u);
}

TEST(InterestAcks, APeerGoingDownOrComingUpWithASnapshotEndsTheWait) {
  InterestAcks a(0, 3, kNoPeer);
  Resumed r;
  run(a.peer_up(1, 0));
  run(a.peer_up(2, 0));
  ASSERT_TRUE(a.hold(5, 1000, r.make()));
  run(a.applied(1, 5));
  run(a.peer_down(2));
  EXPECT_EQ(r.n, 1) << "a peer that is down is not waited for";
  ASSERT_TRUE(a.hold(6, 1000, r.make()));
  run(a.peer_up(2, 6));  // its snapshot covers 6
  EXPECT_EQ(r.n, 1) << "peer 1 has not answered 6";
  run(a.applied(1, 7));
  EXPECT_EQ(r.n, 2);
}

TEST(InterestAcks, WaitsEndInOrderAndAtTheirDeadline) {
  InterestAcks a(0, 2, kNoPeer);
  Resumed r;
  run(a.peer_up(1, 0));
  ASSERT_TRUE(a.hold(4, 100, r.make()));
  ASSERT_TRUE(a.hold(2, 50, r.make()));  // later, smaller: waits as long as the one before
  EXPECT_EQ(a.next_deadline(), std::optional<uint64_t>(100));
  run(a.applied(1, 2));
  EXPECT_EQ(r.n, 0);
  EXPECT_TRUE(a.expired(99).empty());
  auto late = a.expired(100);
  EXPECT_EQ(late.size(), 2u);
  run(std::move(late));
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(a.next_deadline(), std::nullopt);
}

TEST(InterestAcks, NoMarkIsDueWithoutAWait) {
  InterestAcks a(0, 2, kNoPeer);
  run(a.peer_up(1, 0));
  EXPECT_EQ(a.mark_due(9), std::nullopt);
  Resumed r;
  ASSERT_TRUE(a.hold(10, 1000, r.make()));
  EXPECT_EQ(a.mark_due(10), std::optional<uint64_t>(10));
}

TEST(InterestAcks, ThroughTheHubAPeerCountsTheHubsAnswerAlone) {
  InterestAcks a(2, 4, 0);
  Resumed r;
  run(a.peer_up(1, 0));
  run(a.peer_up(3, 0));
  EXPECT_FALSE(a.hold(1, 1000, r.make())) << "the hub is down: nobody to wait for";
  run(a.peer_up(0, 0));
  ASSERT_TRUE(a.hold(1, 1000, r.make()));
  run(a.applied(1, 1));
  run(a.applied(3, 1));
  EXPECT_EQ(r.n, 0);
  run(a.applied(0, 1));
  EXPECT_EQ(r.n, 1);
}

TEST(InterestAcks, TheHubAnswersASubscriberOnceEveryPeerHasItsRound) {
  InterestAcks hub(0, 4, 0);
  EXPECT_TRUE(hub.hub_peer_up(1).empty());
  EXPECT_TRUE(hub.hub_peer_up(2).empty());
  EXPECT_TRUE(hub.hub_peer_up(3).empty());
  EXPECT_EQ(hub.hub_round({}), std::nullopt) << "a relay without marks needs no round";
  const auto r1 = hub.hub_round({{2, 7}, {3, 4}});
  ASSERT_EQ(r1, std::optional<uint64_t>(1));
  const auto r2 = hub.hub_round({{1, 9}});
  ASSERT_EQ(r2, std::optional<uint64_t>(2));
  EXPECT_TRUE(hub.hub_round_applied(1, 2).empty());
  EXPECT_TRUE(hub.hub_round_applied(2, 1).empty());
  auto answers = hub.hub_round_applied(3, 2);
  ASSERT_EQ(answers.size(), 2u) << "round 1 is everywhere";
  EXPECT_EQ(answers[0].to, 2);
  EXPECT_EQ(answers[0].generation, 7u);
  EXPECT_EQ(answers[1].to, 3);
  // Peer 2 goes down before answering round 2: not waited for.
  answers = hub.hub_peer_down(2);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].to, 1);
  EXPECT_EQ(answers[0].generation, 9u);
}

TEST(InterestAcks, TheHubsOwnWaitsEndThroughItsRounds) {
  InterestAcks hub(0, 3, 0);
  Resumed r;
  EXPECT_FALSE(hub.hold(1, 1000, r.make())) << "no other peer up";
  hub.hub_peer_up(1);
  hub.hub_peer_up(2);
  ASSERT_TRUE(hub.hold(1, 1000, r.make()));
  ASSERT_EQ(hub.mark_due(1), std::optional<uint64_t>(1));
  const auto round = hub.hub_round({{0, 1}});
  ASSERT_TRUE(round.has_value());
  EXPECT_TRUE(hub.hub_round_applied(1, *round).empty());
  auto answers = hub.hub_round_applied(2, *round);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].to, 0);
  run(hub.applied(answers[0].to, answers[0].generation));
  EXPECT_EQ(r.n, 1);
}

TEST(InterestAcks, APeerComingUpAtTheHubCountsAsHavingEveryRoundSent) {
  InterestAcks hub(0, 3, 0);
  hub.hub_peer_up(1);
  ASSERT_TRUE(hub.hub_round({{1, 3}}).has_value());
  EXPECT_TRUE(hub.hub_peer_up(2).empty()) << "peer 1 has not answered";
  auto answers = hub.hub_round_applied(1, 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].generation, 3u);
}

}  // namespace
}  // namespace tcpms::routing
