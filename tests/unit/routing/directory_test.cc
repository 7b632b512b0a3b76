// The home's directory: the newest claim wins and names the holder before it; a release or an
// enrollment with a stale ticket changes nothing; a restarted holder is forgotten at once.
#include <gtest/gtest.h>

#include <string>

#include "routing/directory.h"

namespace tcpms::routing {
namespace {

TEST(Directory, ClaimsOrderTheHoldersOfAnId) {
  Directory d;
  const uint64_t k = client_key("dev-1");
  auto a = d.claim(k, 1);
  EXPECT_FALSE(a.previous.has_value());
  auto b = d.claim(k, 2);
  ASSERT_TRUE(b.previous.has_value());
  EXPECT_EQ(b.previous->holder, 1);
  EXPECT_EQ(b.previous->ticket, a.ticket);
  EXPECT_TRUE(newer_ticket(b.ticket, a.ticket));
  // The first holder's release comes late: the entry is the second's and stays.
  EXPECT_FALSE(d.release(k, 1, a.ticket));
  EXPECT_EQ(d.find(k)->holder, 2);
  EXPECT_TRUE(d.release(k, 2, b.ticket));
  EXPECT_FALSE(d.find(k).has_value());
}

TEST(Directory, EnrollmentKeepsTheNewerTicket) {
  Directory d;
  const uint64_t k = client_key("dev-2");
  EXPECT_FALSE(d.enroll(k, 1, 50).has_value());
  EXPECT_FALSE(d.enroll(k, 1, 50).has_value());  // the same again: nothing changes
  auto loser = d.enroll(k, 2, 60);  // newer elsewhere: the first holder loses
  ASSERT_TRUE(loser.has_value());
  EXPECT_EQ(loser->holder, 1);
  EXPECT_EQ(loser->ticket, 50u);
  loser = d.enroll(k, 3, 55);  // older than the entry: the enrolling peer loses
  ASSERT_TRUE(loser.has_value());
  EXPECT_EQ(loser->holder, 3);
  EXPECT_EQ(d.find(k)->holder, 2);
  // New claims continue after the largest ticket seen, so they win over enrolled ones.
  auto c = d.claim(k, 4);
  EXPECT_TRUE(newer_ticket(c.ticket, 60));
}

TEST(Directory, ForgetsARestartedHolderAndGrows) {
  Directory d;
  for (int i = 0; i < 10000; ++i) d.claim(client_key("c" + std::to_string(i)), static_cast<PeerId>(i % 4));
  EXPECT_EQ(d.size(), 10000u);
  EXPECT_EQ(d.forget_holder(1), 2500u);
  EXPECT_EQ(d.size(), 7500u);
  for (int i = 0; i < 10000; ++i) {
    auto e = d.find(client_key("c" + std::to_string(i)));
    EXPECT_EQ(e.has_value(), i % 4 != 1) << i;
  }
  EXPECT_LE(d.memory_bytes(), 16u * 16384u);
}

TEST(Directory, HomesSpreadIdsEvenly) {
  std::vector<int> count(56, 0);
  for (int i = 0; i < 56000; ++i) ++count[home_of("client-" + std::to_string(i), 56)];
  for (int c : count) EXPECT_NEAR(c, 1000, 150);
  EXPECT_EQ(home_of("anything", 1), 0);
}

}  // namespace
}  // namespace tcpms::routing
