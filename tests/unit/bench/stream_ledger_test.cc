#include "stream_ledger.h"

#include <gtest/gtest.h>

namespace tcpms::benchapp {
namespace {

TEST(StreamLedger, RoundRobinOverTheLoopsClients) {
  StreamLedger l(3);
  EXPECT_EQ(l.next_client(), 0u);
  EXPECT_EQ(l.next_client(), 1u);
  EXPECT_EQ(l.next_client(), 2u);
  EXPECT_EQ(l.next_client(), 0u);
}

TEST(StreamLedger, AckedAndNeverDeliveredIsWhatRemainsLost) {
  StreamLedger l(2);
  const uint32_t a = l.sent(0), b = l.sent(1), c = l.sent(0);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(c, 2u);
  EXPECT_TRUE(l.acked(a));
  EXPECT_TRUE(l.acked(b));
  EXPECT_EQ(l.acked_undelivered(), 2u);
  EXPECT_EQ(l.unacked(), 1u);  // c: in flight, not lost
  EXPECT_EQ(l.delivered(a, 0), StreamLedger::Delivery::kFirst);
  EXPECT_EQ(l.acked_undelivered(), 1u);
  EXPECT_EQ(l.sent_count(), 3u);
  EXPECT_EQ(l.acked_count(), 2u);
  EXPECT_EQ(l.delivered_count(), 1u);
}

TEST(StreamLedger, DeliveredBeforeItsPubackIsNotWaitedFor) {
  StreamLedger l(1);
  const uint32_t m = l.sent(0);
  EXPECT_EQ(l.delivered(m, 0), StreamLedger::Delivery::kFirst);
  EXPECT_TRUE(l.acked(m));
  EXPECT_EQ(l.acked_undelivered(), 0u);
  EXPECT_EQ(l.unacked(), 0u);
}

TEST(StreamLedger, DuplicatesWrongClientsAndUnknownMessagesAreTold) {
  StreamLedger l(2);
  const uint32_t m = l.sent(1);
  EXPECT_EQ(l.delivered(m, 0), StreamLedger::Delivery::kWrongClient);
  EXPECT_EQ(l.delivered(m, 1), StreamLedger::Delivery::kFirst);
  EXPECT_EQ(l.delivered(m, 1), StreamLedger::Delivery::kDuplicate);
  EXPECT_EQ(l.delivered(7, 1), StreamLedger::Delivery::kUnknown);
  EXPECT_EQ(l.duplicates(), 1u);
  EXPECT_EQ(l.delivered_count(), 1u);
  EXPECT_TRUE(l.acked(m));
  EXPECT_FALSE(l.acked(m));  // twice
  EXPECT_FALSE(l.acked(9));  // never sent
  EXPECT_EQ(l.acked_count(), 1u);
}

}  // namespace
}  // namespace tcpms::benchapp
