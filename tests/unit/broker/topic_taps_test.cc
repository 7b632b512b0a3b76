// TopicTaps (the dashboard's topic viewer): filters, the ring, reading by sequence, the cap.
#include "broker/topic_taps.h"

#include <gtest/gtest.h>

namespace tcpms::broker {
namespace {

Message msg(std::string_view topic, std::string_view payload) {
  Message m;
  m.topic = SharedBytes::copy_of(as_bytes(topic));
  m.payload = SharedBytes::copy_of(as_bytes(payload));
  return m;
}

TEST(TopicTaps, OffersMatchingMessagesAndReadsAfterASequence) {
  TopicTaps taps;
  EXPECT_FALSE(taps.active());
  auto id = taps.open("room/+/temp");
  ASSERT_TRUE(id);
  EXPECT_TRUE(taps.active());
  taps.offer(msg("room/1/temp", "21"));
  taps.offer(msg("room/1/humidity", "40"));
  taps.offer(msg("$SYS/room/1/temp", "x"));  // "+" does not reach into $ topics
  taps.offer(msg("room/2/temp", "19"));
  auto r = taps.read(*id, 0);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->entries.size(), 2u);
  EXPECT_EQ(r->entries[0].topic, "room/1/temp");
  EXPECT_EQ(r->entries[1].payload, "19");
  EXPECT_EQ(r->next, 2u);
  EXPECT_TRUE(taps.read(*id, r->next)->entries.empty());
  EXPECT_TRUE(taps.close(*id));
  EXPECT_FALSE(taps.read(*id, 0));
  EXPECT_FALSE(taps.active());
}

TEST(TopicTaps, BoundedRingPayloadsAndTapCount) {
  TopicTaps taps;
  auto id = taps.open("#");
  std::string big(TopicTaps::kMaxPayloadBytes + 100, 'p');
  for (size_t i = 0; i < TopicTaps::kRingSize + 5; ++i) taps.offer(msg("t", big));
  auto r = taps.read(*id, 0);
  EXPECT_EQ(r->entries.size(), TopicTaps::kRingSize);
  EXPECT_EQ(r->dropped, 5u);
  EXPECT_EQ(r->entries.front().seq, 6u);
  EXPECT_EQ(r->entries.front().payload.size(), TopicTaps::kMaxPayloadBytes);
  EXPECT_EQ(r->entries.front().payload_bytes, big.size());
  for (size_t i = 1; i < TopicTaps::kMaxTaps; ++i) EXPECT_TRUE(taps.open("a"));
  EXPECT_FALSE(taps.open("b"));
}

}  // namespace
}  // namespace tcpms::broker
