#include "cluster/node_ring.h"

#include <gtest/gtest.h>

#include <map>

namespace tcpms::cluster {
namespace {

TEST(NodeRing, HomeIsALiveSlotAndEveryViewAgrees) {
  const uint64_t live = 0b1011'0101;
  for (uint64_t key = 1; key < 2000; ++key) {
    const uint16_t h = rendezvous_home(key * 0x9E3779B97F4A7C15ull, live);
    ASSERT_NE(h, 0xFFFF);
    EXPECT_TRUE(live >> h & 1);
    EXPECT_EQ(h, rendezvous_home(key * 0x9E3779B97F4A7C15ull, live));
  }
  EXPECT_EQ(rendezvous_home(42, 0), 0xFFFF);
  EXPECT_EQ(rendezvous_home(42, uint64_t{1} << 9), 9);
}

TEST(NodeRing, ANodeLeavingMovesOnlyTheIdsItWasHomeOf) {
  const uint64_t before = 0b1111, after = 0b1011;  // slot 2 leaves
  int moved = 0;
  for (uint64_t key = 1; key < 5000; ++key) {
    const uint64_t k = key * 0x9E3779B97F4A7C15ull;
    const uint16_t a = rendezvous_home(k, before), b = rendezvous_home(k, after);
    if (a != 2) EXPECT_EQ(a, b) << key;
    else ++moved;
  }
  EXPECT_GT(moved, 900);  // about a quarter
  EXPECT_LT(moved, 1600);
}

TEST(NodeRing, ANodeJoiningTakesOnlyIdsFromOthersToItself) {
  const uint64_t before = 0b0111, after = 0b1111;  // slot 3 joins
  std::map<uint16_t, int> to;
  for (uint64_t key = 1; key < 5000; ++key) {
    const uint64_t k = key * 0x9E3779B97F4A7C15ull;
    const uint16_t a = rendezvous_home(k, before), b = rendezvous_home(k, after);
    if (a != b) ++to[b];
  }
  EXPECT_EQ(to.size(), 1u);
  EXPECT_TRUE(to.count(3));
}

}  // namespace
}  // namespace tcpms::cluster
