// SessionQueues: the in-flight window and its acknowledgements (3.1.1 §4.3), packet ids
// [MQTT-2.3.1-2], the bounded queue, inbound QoS 2 ids.
#include "broker/inflight.h"

#include <gtest/gtest.h>

namespace tcpms::broker {
namespace {

OutMessage msg(mqtt::QoS q, std::string_view payload = "p") {
  OutMessage m;
  m.topic = SharedBytes::copy_of(as_bytes("t"));
  m.payload = SharedBytes::copy_of(as_bytes(payload));
  m.qos = q;
  return m;
}

TEST(SessionQueues, Qos1WindowAndPuback) {
  SessionQueues q;
  EXPECT_TRUE(q.idle());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.window_has_room(3));
    EXPECT_EQ(q.start(msg(mqtt::QoS::k1)).packet_id, i + 1);
  }
  EXPECT_FALSE(q.window_has_room(3));
  EXPECT_FALSE(q.on_pubrec(2));  // wrong handshake for QoS 1
  EXPECT_TRUE(q.on_puback(2));
  EXPECT_FALSE(q.on_puback(2));  // duplicate ack
  EXPECT_TRUE(q.window_has_room(3));
  // Order of the rest is kept for redelivery.
  ASSERT_EQ(q.inflight().size(), 2u);
  EXPECT_EQ(q.inflight()[0].packet_id, 1);
  EXPECT_EQ(q.inflight()[1].packet_id, 3);
}

TEST(SessionQueues, Qos2Handshake) {
  SessionQueues q;
  uint16_t id = q.start(msg(mqtt::QoS::k2)).packet_id;
  EXPECT_EQ(q.inflight()[0].state, OutMessage::State::kWaitPubrec);
  EXPECT_FALSE(q.on_pubcomp(id));
  EXPECT_TRUE(q.on_pubrec(id));
  EXPECT_EQ(q.inflight()[0].state, OutMessage::State::kWaitPubcomp);
  EXPECT_TRUE(q.inflight()[0].payload.empty()) << "payload released after PUBREC";
  EXPECT_TRUE(q.on_pubrec(id)) << "a repeated PUBREC is answered with PUBREL again";
  EXPECT_TRUE(q.on_pubcomp(id));
  EXPECT_TRUE(q.idle());
}

TEST(SessionQueues, AnAckOfTheWrongTypeForAnIdInFlightIsAViolation) {
  using mqtt::PacketType;
  SessionQueues q;
  const uint16_t q1 = q.start(msg(mqtt::QoS::k1)).packet_id;
  const uint16_t q2 = q.start(msg(mqtt::QoS::k2)).packet_id;
  // QoS 1 is acknowledged by PUBACK only.
  EXPECT_TRUE(q.wrong_ack(PacketType::kPubrec, q1));
  EXPECT_TRUE(q.wrong_ack(PacketType::kPubcomp, q1));
  EXPECT_FALSE(q.wrong_ack(PacketType::kPuback, q1));
  // QoS 2 awaiting PUBREC: neither PUBACK nor PUBCOMP (no PUBREL was sent).
  EXPECT_TRUE(q.wrong_ack(PacketType::kPuback, q2));
  EXPECT_TRUE(q.wrong_ack(PacketType::kPubcomp, q2));
  EXPECT_FALSE(q.wrong_ack(PacketType::kPubrec, q2));
  ASSERT_TRUE(q.on_pubrec(q2));
  // Awaiting PUBCOMP: a repeated PUBREC is legitimate (PUBREL again), PUBACK is not.
  EXPECT_FALSE(q.wrong_ack(PacketType::kPubrec, q2));
  EXPECT_FALSE(q.wrong_ack(PacketType::kPubcomp, q2));
  EXPECT_TRUE(q.wrong_ack(PacketType::kPuback, q2));
  // Ids not in flight are late duplicates, never violations.
  ASSERT_TRUE(q.on_puback(q1));
  for (PacketType t : {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubcomp})
    EXPECT_FALSE(q.wrong_ack(t, q1));
}

TEST(SessionQueues, PacketIdsSkipZeroAndIdsInUse) {
  SessionQueues q;
  for (int i = 0; i < 65534; ++i) {
    auto& m = q.start(msg(mqtt::QoS::k1));
    if (i != 0) {
      ASSERT_TRUE(q.on_puback(m.packet_id));
    }
  }
  // Id 1 is still in flight; the counter is at 65534. Next: 65535, then wrap past 0 and 1.
  EXPECT_EQ(q.start(msg(mqtt::QoS::k1)).packet_id, 65535);
  EXPECT_EQ(q.start(msg(mqtt::QoS::k1)).packet_id, 2);
}

TEST(SessionQueues, BoundedQueue) {
  SessionQueues q;
  EXPECT_TRUE(q.enqueue(msg(mqtt::QoS::k1, "aaaa"), 2, 0));
  EXPECT_TRUE(q.enqueue(msg(mqtt::QoS::k1, "bbbb"), 2, 0));
  EXPECT_FALSE(q.enqueue(msg(mqtt::QoS::k1), 2, 0)) << "count bound";
  EXPECT_FALSE(q.enqueue(msg(mqtt::QoS::k1), 10, 8)) << "byte bound";
  EXPECT_EQ(q.held_bytes(), 2 * held_bytes_of(msg(mqtt::QoS::k1, "aaaa")));
  OutMessage first = q.pop_queued();
  EXPECT_EQ(as_chars(first.payload.view()), "aaaa");
  EXPECT_EQ(q.queued_count(), 1u);
  EXPECT_EQ(q.clear(), 1u);
  EXPECT_TRUE(q.idle());
}

TEST(SessionQueues, OneByteBoundCoversQueuedAndInFlightMessages) {
  using mqtt::QoS;
  SessionQueues q;
  const std::string big(1000, 'x');
  const size_t one = held_bytes_of(msg(QoS::k1, big));
  EXPECT_GE(one, sizeof(OutMessage) + 1000 + 1) << "entry, payload and topic are all charged";
  const size_t bound = 3 * one;
  // An empty session admits one message however large: it must get through, alone.
  EXPECT_TRUE(q.admits(msg(QoS::k1, std::string(10 * one, 'y')), bound));
  const uint16_t id = q.start(msg(QoS::k2, big)).packet_id;  // in flight
  EXPECT_FALSE(q.admits(msg(QoS::k1, std::string(10 * one, 'y')), bound));
  ASSERT_TRUE(q.enqueue(msg(QoS::k1, big), 100, bound));
  ASSERT_TRUE(q.enqueue(msg(QoS::k1, big), 100, bound));
  EXPECT_EQ(q.held_bytes(), 3 * one);
  EXPECT_FALSE(q.enqueue(msg(QoS::k1, big), 100, bound)) << "in flight and queued count together";
  // Past PUBREC a QoS 2 message holds only its entry.
  ASSERT_TRUE(q.on_pubrec(id));
  EXPECT_EQ(q.held_bytes(), 2 * one + held_bytes_of(OutMessage{}));
  // Moving from the queue into the window keeps the charge; acknowledging releases it.
  const size_t before = q.held_bytes();
  const uint16_t next = q.start(q.pop_queued()).packet_id;
  EXPECT_EQ(q.held_bytes(), before);
  ASSERT_TRUE(q.on_puback(next));
  ASSERT_TRUE(q.on_pubcomp(id));
  EXPECT_EQ(q.held_bytes(), one);
  q.clear();
  EXPECT_EQ(q.held_bytes(), 0u);
}

TEST(SessionQueues, IncomingQos2Ids) {
  SessionQueues q;
  EXPECT_FALSE(q.incoming_seen(7));
  q.incoming_add(7);
  q.incoming_add(9);
  EXPECT_TRUE(q.incoming_seen(7));
  EXPECT_TRUE(q.incoming_release(7));
  EXPECT_FALSE(q.incoming_release(7));
  EXPECT_TRUE(q.incoming_seen(9));
  EXPECT_EQ(q.incoming_count(), 1u);
}

}  // namespace
}  // namespace tcpms::broker
