// PUBLISH: 3.1.1 §3.3, 5.0 §3.3.
#include <gtest/gtest.h>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {

Decoded<Publish> dec(const Buf& input, ProtocolVersion v) {
  const Buf& wire = keep(input);
  const FrameResult f = next_frame(view(wire), 0);
  if (f.status != FrameStatus::kComplete) return f.error;
  return decode_publish(f.header.flags, f.body, v);
}


TEST(Publish, DecodesQos0WithoutPacketId) {
  // 3.1.1 §3.3.2.3 example topic "a/b"; QoS 0 has no Packet Identifier [MQTT-2.3.1-5].
  const Buf wire = frame(0x31, cat({str("a/b"), raw("hello")}));
  const auto r = decode_publish(0x01, view(wire).subspan(2), k311);  // this buffer, not a copy
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->topic, "a/b");
  EXPECT_EQ(r->qos, QoS::k0);
  EXPECT_TRUE(r->retain);
  EXPECT_FALSE(r->dup);
  EXPECT_EQ(r->packet_id, 0);
  EXPECT_EQ(as_chars(r->payload), "hello");
  EXPECT_EQ(r->payload.data(), wire.data() + wire.size() - 5);  // a view into the input
}

TEST(Publish, DecodesQos1And2WithPacketId) {
  // 3.1.1 §3.3.2.3 example: topic "a/b", Packet Identifier 10.
  auto r = dec(frame(0x32, cat({str("a/b"), B({0x00, 0x0A}), raw("x")})), k311);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->qos, QoS::k1);
  EXPECT_EQ(r->packet_id, 10);
  r = dec(frame(0x3C, cat({str("a/b"), B({0x12, 0x34})})), k311);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->qos, QoS::k2);
  EXPECT_TRUE(r->dup);
  EXPECT_EQ(r->packet_id, 0x1234);
  EXPECT_TRUE(r->payload.empty());  // a zero-length payload is valid
}

TEST(Publish, PacketIdZeroIsProtocolError) {
  // [MQTT-2.3.1-1]
  EXPECT_EQ(code(frame(0x32, cat({str("a"), B({0x00, 0x00})})), k311), ReasonCode::kProtocolError);
}

TEST(Publish, QosFlagErrorsAreMalformedEvenWhenCalledDirectly) {
  EXPECT_EQ(decode_publish(0x06, view(str("a")), k311).error().code, ReasonCode::kMalformedPacket);  // [MQTT-3.3.1-4]
  EXPECT_EQ(decode_publish(0x08, view(str("a")), k311).error().code, ReasonCode::kMalformedPacket);  // [MQTT-3.3.1-2]
}

TEST(Publish, WildcardsInTopicAreTopicNameInvalid) {
  // [MQTT-3.3.2-2]
  EXPECT_EQ(code(frame(0x30, str("a/+")), k311), ReasonCode::kTopicNameInvalid);
  EXPECT_EQ(code(frame(0x30, str("#")), k311), ReasonCode::kTopicNameInvalid);
  EXPECT_EQ(code(frame(0x30, cat({str("a/#"), props({})})), k5), ReasonCode::kTopicNameInvalid);
}

TEST(Publish, TopicMustBeValidUtf8) {
  // [MQTT-3.3.2-1], [MQTT-1.5.3-1/2]
  EXPECT_EQ(code(frame(0x30, str("\xED\xA0\x80")), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x30, str(std::string_view("a\0b", 3))), k311), ReasonCode::kMalformedPacket);
}

TEST(Publish, TruncatedTopicOrPacketIdIsMalformed) {
  EXPECT_EQ(code(frame(0x30, B({0x00, 0x05, 'a'})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x30, B({0x00})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x32, cat({str("a"), B({0x01})})), k311), ReasonCode::kMalformedPacket);
}

TEST(Publish, EmptyTopic311IsInvalid) {
  // [MQTT-4.7.3-1]
  EXPECT_EQ(code(frame(0x30, str("")), k311), ReasonCode::kTopicNameInvalid);
}

TEST(Publish, V5EmptyTopicNeedsTopicAlias) {
  // 5.0 §3.3.2.1: zero-length topic only with a Topic Alias.
  EXPECT_EQ(code(frame(0x30, cat({str(""), props({})})), k5), ReasonCode::kProtocolError);
  const auto r = dec(frame(0x30, cat({str(""), props(B({0x23, 0x00, 0x07})), raw("p")})), k5);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->properties.number(PropertyId::kTopicAlias), 7u);
  EXPECT_EQ(as_chars(r->payload), "p");
}

TEST(Publish, V5TopicAliasZeroIsTopicAliasInvalid) {
  // [MQTT-3.3.2-8]; the receiver disconnects with 0x94, as for one over the maximum (§3.3.4).
  EXPECT_EQ(code(frame(0x30, cat({str("a"), props(B({0x23, 0x00, 0x00}))})), k5),
            ReasonCode::kTopicAliasInvalid);
}

TEST(Publish, V5ResponseTopicWithAWildcardIsProtocolError) {
  // [MQTT-3.3.2-14]: a Response Topic is a Topic Name.
  for (const char* t : {"reply/+", "reply/#", "+", "#", "a+b"}) {
    EXPECT_EQ(code(frame(0x30, cat({str("a"), props(cat({B({0x08}), str(t)}))})), k5),
              ReasonCode::kProtocolError) << t;
  }
  const auto r = dec(frame(0x30, cat({str("a"), props(cat({B({0x08}), str("reply/to/me")}))})), k5);
  ASSERT_TRUE(r) << r.error().what;
}

TEST(Publish, V5PropertiesFollowThePacketId) {
  const auto r = dec(frame(0x32, cat({str("t"), B({0x00, 0x01}), props(B({0x01, 0x01, 0x0B, 0x05})), raw("{}")})), k5);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->packet_id, 1);
  EXPECT_EQ(r->properties.number(PropertyId::kPayloadFormatIndicator), 1u);
  EXPECT_EQ(r->properties.number(PropertyId::kSubscriptionIdentifier), 5u);
  EXPECT_EQ(as_chars(r->payload), "{}");
}

TEST(Publish, V5MissingPropertyLengthIsMalformed) {
  EXPECT_EQ(code(frame(0x30, str("a")), k5), ReasonCode::kMalformedPacket);
}

TEST(Publish, V5PropertyNotForPublishIsProtocolError) {
  EXPECT_EQ(code(frame(0x30, cat({str("a"), props(B({0x21, 0x00, 0x01}))})), k5), ReasonCode::kProtocolError);
}

}  // namespace
}  // namespace tcpms::mqtt::test
