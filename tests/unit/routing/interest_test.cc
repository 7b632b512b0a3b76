// The interest summary: whatever filters a peer has, a topic one of them matches always names
// that peer (no false negatives), through snapshots, deltas, removals, growth and restarts.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mqtt/topic.h"
#include "routing/interest_keys.h"
#include "routing/local_interest.h"
#include "routing/remote_interest.h"
#include "interest_test_support.h"

namespace tcpms::routing {
namespace {

TEST(InterestKeys, FilterKeysMatchTheTopicsTheyCover) {
  auto covered = [](std::string_view filter, std::string_view topic) {
    FilterKey k = filter_key(filter);
    if (k.shape == 0) return k.hash == exact_topic_key(topic);
    std::string_view levels[kMaxShapeLevels + 1];
    uint32_t n = 0;
    split_levels(topic, levels, kMaxShapeLevels + 1, n);
    std::string scratch;
    uint64_t key = 0;
    return topic_shape_key(k.shape, levels, n, scratch, key) && key == k.hash;
  };
  EXPECT_TRUE(covered("a/b", "a/b"));
  EXPECT_FALSE(covered("a/b", "a/c"));
  EXPECT_TRUE(covered("a/+", "a/x"));
  EXPECT_FALSE(covered("a/+", "b/x"));
  EXPECT_FALSE(covered("a/+", "a/x/y"));
  EXPECT_TRUE(covered("a/#", "a"));  // "#" covers its parent [MQTT-4.7.1-2]
  EXPECT_TRUE(covered("a/#", "a/x/y"));
  EXPECT_FALSE(covered("a/#", "b/x"));
  EXPECT_TRUE(covered("#", "anything/at/all"));
  EXPECT_TRUE(covered("+/x", "q/x"));
  EXPECT_FALSE(covered("+/x", "q/y"));
  EXPECT_TRUE(covered("/+", "/x"));
  EXPECT_TRUE(covered("a//+/c", "a//b/c"));
  EXPECT_TRUE(covered("dev/+/cmd", "dev/17/cmd"));
  EXPECT_FALSE(covered("dev/+/cmd", "dev/17/state"));
  EXPECT_TRUE(covered("+/+/#", "a/b"));
  EXPECT_FALSE(covered("+/+/#", "a"));
  // Keys are fixed: every process, every build, agrees (this value is part of the protocol).
  EXPECT_EQ(key_hash("dev/1/cmd", 0), key_hash("dev/1/cmd", 0));
  EXPECT_NE(exact_topic_key("dev/1/cmd"), exact_topic_key("dev/2/cmd"));
  EXPECT_NE(filter_key("a/+/c").hash, filter_key("a/c/+").hash);
}

TEST(Interest, SnapshotAndDeltasReachThePeer) {
  LocalInterest local({}, 1);
  RemoteInterest remote(/*self=*/0, /*peers=*/4, 3);
  apply(remote, 2, local.snapshot());
  EXPECT_FALSE(names(remote, "dev/1/cmd", 2));
  local.add("dev/1/cmd", 0);
  local.add("fleet/+/status", 0);
  apply(remote, 2, local.take_update());
  EXPECT_TRUE(names(remote, "dev/1/cmd", 2));
  EXPECT_TRUE(names(remote, "fleet/9/status", 2));
  EXPECT_FALSE(names(remote, "dev/1/cmd", 1)) << "another peer";
  EXPECT_TRUE(local.take_update().empty()) << "nothing changed since";
  local.remove("dev/1/cmd", 0);
  apply(remote, 2, local.take_update());
  EXPECT_FALSE(names(remote, "dev/1/cmd", 2));
  EXPECT_TRUE(names(remote, "fleet/1/status", 2));
  remote.forget(2);
  EXPECT_FALSE(names(remote, "fleet/1/status", 2));
}

TEST(Interest, TwoLoopsWithOneFilterNeedTwoRemovals) {
  LocalInterest local({}, 2);
  RemoteInterest remote(0, 2, 3);
  apply(remote, 1, local.snapshot());
  local.add("x/y", 0);
  local.add("x/y", 1);
  local.remove("x/y", 0);
  apply(remote, 1, local.take_update());
  EXPECT_TRUE(names(remote, "x/y", 1));
  local.remove("x/y", 1);
  apply(remote, 1, local.take_update());
  EXPECT_FALSE(names(remote, "x/y", 1));
}

// A brute-force matcher, the reference.
bool matches(std::string_view filter, std::string_view topic) {
  return mqtt::topic_matches(filter, topic);
}

TEST(Interest, NeverMissesAMatchAndRarelySaysYesWithout) {
  std::mt19937 rng(11);
  const uint32_t peers = 8;
  std::vector<std::unique_ptr<LocalInterest>> owned;
  for (uint32_t p = 0; p < peers; ++p) owned.push_back(std::make_unique<LocalInterest>(InterestOptions{}, 1));
  auto locals = [&](uint32_t p) -> LocalInterest& { return *owned[p]; };
  RemoteInterest remote(0, peers, 3);
  std::vector<std::vector<std::string>> filters(peers);
  for (uint32_t p = 1; p < peers; ++p) apply(remote, static_cast<PeerId>(p), locals(p).snapshot());
  auto level = [&] { return std::to_string(rng() % 50); };
  for (int i = 0; i < 20000; ++i) {
    const uint32_t p = 1 + rng() % (peers - 1);
    std::string f = "dev/" + level() + "/" + level();
    if (rng() % 100 == 0) f = "dev/+/" + level();
    if (rng() % 500 == 0) f = "dev/" + level() + "/#";
    filters[p].push_back(f);
    locals(p).add(f, 0);
    // Grow as the router would: every loop (one here) walks its filters again.
    if (locals(p).wanted_slots() > locals(p).slots()) {
      ASSERT_TRUE(locals(p).begin_rebuild(locals(p).wanted_slots()));
      for (const std::string& g : filters[p]) locals(p).add_walked(g);
      ASSERT_TRUE(locals(p).walk_done(0));
    }
    if (i % 97 == 0) apply(remote, static_cast<PeerId>(p), locals(p).take_update());
  }
  for (uint32_t p = 1; p < peers; ++p) {
    std::string u = locals(p).take_update();
    if (!u.empty()) apply(remote, static_cast<PeerId>(p), u);
  }
  size_t false_positives = 0, checks = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string topic = "dev/" + level() + "/" + level();
    PeerSet got;
    remote.match(topic, got);
    for (uint32_t p = 1; p < peers; ++p) {
      bool want = false;
      for (const std::string& f : filters[p]) want = want || matches(f, topic);
      ASSERT_TRUE(!want || got.has(static_cast<PeerId>(p))) << topic << " missed peer " << p;
      if (!want && got.has(static_cast<PeerId>(p))) ++false_positives;
      ++checks;
    }
  }
  EXPECT_LT(false_positives, checks / 50) << "false positives " << false_positives << " of " << checks;
}

TEST(Interest, APeerAtANewSizeIsNeverMissedDuringTheChange) {
  LocalInterest small({}, 1);
  RemoteInterest remote(0, 3, 3);
  small.add("keep/me", 0);
  apply(remote, 1, small.snapshot());
  apply(remote, 2, small.snapshot());
  // Peer 1 grows: its snapshot at the larger size moves it to a second table.
  ASSERT_TRUE(small.begin_rebuild(small.slots() * 4));
  small.add_walked("keep/me");
  ASSERT_TRUE(small.walk_done(0));
  apply(remote, 1, small.take_update());
  EXPECT_TRUE(names(remote, "keep/me", 1));
  EXPECT_TRUE(names(remote, "keep/me", 2));
  EXPECT_EQ(remote.largest_slots(), small.slots());
  // A delta at the old size after the move is dropped (the snapshot already has it all).
  LocalInterest old({}, 1);
  old.add("other", 0);
  auto f = decode(as_bytes(old.take_update()));
  ASSERT_TRUE(f.has_value());
  EXPECT_FALSE(remote.apply(1, std::get<InterestDelta>(*f)));
  EXPECT_TRUE(names(remote, "keep/me", 1));
}

TEST(Interest, AnUnknownPeerGetsEverything) {
  RemoteInterest remote(0, 3, 3);
  remote.send_everything(2);
  EXPECT_TRUE(names(remote, "any/topic", 2));
  EXPECT_FALSE(names(remote, "any/topic", 1));
  LocalInterest local({}, 1);
  apply(remote, 2, local.snapshot());  // its snapshot arrives: back to its filters
  EXPECT_FALSE(names(remote, "any/topic", 2));
}

TEST(Interest, TheBitmapDoublesWhenItGrows) {
  // 10 slots a filter, 4,096 to start: the 410th filter asks for 8,192 slots, not 16,384
  // (each size is paid in every peer's RemoteInterest table).
  LocalInterest local({}, 1);
  ASSERT_EQ(local.slots(), 4096u);
  for (int i = 0; i < 409; ++i) local.add("dev/" + std::to_string(i) + "/cmd", 0);
  EXPECT_EQ(local.wanted_slots(), 4096u);
  local.add("dev/409/cmd", 0);
  EXPECT_EQ(local.wanted_slots(), 8192u);
}

TEST(Interest, FewPeersPayANarrowRowASlot) {
  LocalInterest local({}, 1);
  local.add("dev/1/cmd", 0);
  for (uint32_t peers : {3u, 8u, 9u, 53u, 64u, 65u, 130u}) {
    RemoteInterest remote(0, peers, 3);
    const PeerId last = static_cast<PeerId>(peers - 1);
    apply(remote, 1, local.snapshot());
    apply(remote, last, local.snapshot());
    const size_t row_bits = peers <= 8 ? 8 : peers <= 16 ? 16 : peers <= 32 ? 32 : 64 * ((peers + 63) / 64);
    EXPECT_EQ(remote.table_bytes(), size_t{local.slots()} * row_bits / 8) << peers << " peers";
    EXPECT_TRUE(names(remote, "dev/1/cmd", 1)) << peers << " peers";
    EXPECT_TRUE(names(remote, "dev/1/cmd", last)) << peers << " peers";
    EXPECT_FALSE(names(remote, "dev/2/cmd", last)) << peers << " peers";
    remote.forget(last);
    EXPECT_FALSE(names(remote, "dev/1/cmd", last)) << peers << " peers";
    EXPECT_TRUE(names(remote, "dev/1/cmd", 1)) << peers << " peers";
  }
}

}  // namespace
}  // namespace tcpms::routing
