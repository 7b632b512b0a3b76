// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK: 3.1.1 §3.8-§3.11, 5.0 §3.8-§3.11.
#include <gtest/gtest.h>

#include <vector>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {


TEST(Subscribe, DecodesSpecExample311) {
  // 3.1.1 §3.8.3.1 example: "a/b" QoS 1, "c/d" QoS 2; Packet Identifier 10 (§3.8.2.1).
  const Buf wire = frame(0x82, cat({B({0x00, 0x0A}), str("a/b"), B({0x01}), str("c/d"), B({0x02})}));
  const auto r = decode_one(wire, k311);
  ASSERT_TRUE(r) << r.error().what;
  const auto& s = std::get<Subscribe>(r.value());
  EXPECT_EQ(s.packet_id, 10);
  std::vector<Subscription> subs(s.subscriptions.begin(), s.subscriptions.end());
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs[0].filter, "a/b");
  EXPECT_EQ(subs[0].options.max_qos, QoS::k1);
  EXPECT_EQ(subs[1].filter, "c/d");
  EXPECT_EQ(subs[1].options.max_qos, QoS::k2);
}

TEST(Subscribe, NeedsAtLeastOneFilter) {
  // [MQTT-3.8.3-3]
  EXPECT_EQ(code(frame(0x82, B({0x00, 0x01})), k311), ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x01}), props({})})), k5), ReasonCode::kProtocolError);
}

TEST(Subscribe, PacketIdZeroIsProtocolError) {
  // [MQTT-2.3.1-1]
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x00}), str("a"), B({0x00})})), k311), ReasonCode::kProtocolError);
}

TEST(Subscribe, ReservedBitsOrQos3AreMalformed311) {
  // [MQTT-3.8.3-4] (3.1.1)
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x01}), str("a"), B({0x03})})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x01}), str("a"), B({0x04})})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x01}), str("a"), B({0x80})})), k311), ReasonCode::kMalformedPacket);
}

TEST(Subscribe, FilterMustBeValidUtf8AndComplete) {
  // [MQTT-3.8.3-1]
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x01}), str("\xC0\xAF"), B({0x00})})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x82, cat({B({0x00, 0x01}), str("a")})), k311), ReasonCode::kMalformedPacket);  // no options
}

TEST(Subscribe, StructurallyBadFilterIsLeftToTheBroker) {
  // 5.0 answers it with SUBACK 0x8F for that entry; the decoder only checks the wire format.
  const auto r = decode_one(frame(0x82, cat({B({0x00, 0x01}), str("a/#/b"), B({0x00})})), k311);
  ASSERT_TRUE(r);
  const auto& s = std::get<Subscribe>(r.value());
  EXPECT_EQ(validate_topic_filter(s.subscriptions.begin()->filter), TopicError::kMisplacedMultiLevel);
}

TEST(Subscribe, V5OptionsAndProperties) {
  // Options 0x2D: QoS 1, No Local, Retain As Published, Retain Handling 2.
  const Buf wire = frame(0x82, cat({B({0x00, 0x02}), props(B({0x0B, 0x07})), str("x/+"), B({0x2D})}));
  const auto r = decode_one(wire, k5);
  ASSERT_TRUE(r) << r.error().what;
  const auto& s = std::get<Subscribe>(r.value());
  EXPECT_EQ(s.properties.number(PropertyId::kSubscriptionIdentifier), 7u);
  const Subscription sub = *s.subscriptions.begin();
  EXPECT_EQ(sub.options.max_qos, QoS::k1);
  EXPECT_TRUE(sub.options.no_local);
  EXPECT_TRUE(sub.options.retain_as_published);
  EXPECT_EQ(sub.options.retain_handling, RetainHandling::kDoNotSend);
}

TEST(Subscribe, V5OptionRules) {
  auto with = [](int options, std::string_view filter = "a") {
    return frame(0x82, cat({B({0x00, 0x01}), props({}), str(filter), B({options})}));
  };
  EXPECT_EQ(code(with(0x40), k5), ReasonCode::kMalformedPacket);  // reserved bits [MQTT-3.8.3-5]
  EXPECT_EQ(code(with(0x03), k5), ReasonCode::kProtocolError);    // QoS 3
  EXPECT_EQ(code(with(0x30), k5), ReasonCode::kProtocolError);    // Retain Handling 3
  EXPECT_EQ(code(with(0x04, "$share/g/a"), k5), ReasonCode::kProtocolError);  // [MQTT-3.8.3-4]
  EXPECT_EQ(code(with(0x04, "a"), k5), ReasonCode::kSuccess);
}

TEST(Unsubscribe, DecodesSpecExample311) {
  // 3.1.1 §3.10.3.1 example: "a/b", "c/d".
  const auto r = decode_one(frame(0xA2, cat({B({0x00, 0x0B}), str("a/b"), str("c/d")})), k311);
  ASSERT_TRUE(r) << r.error().what;
  const auto& u = std::get<Unsubscribe>(r.value());
  EXPECT_EQ(u.packet_id, 11);
  std::vector<std::string_view> filters(u.filters.begin(), u.filters.end());
  EXPECT_EQ(filters, (std::vector<std::string_view>{"a/b", "c/d"}));
}

TEST(Unsubscribe, Rules) {
  EXPECT_EQ(code(frame(0xA2, B({0x00, 0x01})), k311), ReasonCode::kProtocolError);  // [MQTT-3.10.3-2]
  EXPECT_EQ(code(frame(0xA2, cat({B({0x00, 0x01}), str("\xFF")})), k311), ReasonCode::kMalformedPacket);  // [MQTT-3.10.3-1]
  EXPECT_EQ(code(frame(0xA2, cat({B({0x00, 0x01}), B({0x00, 0x03, 'a'})})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0xA2, cat({B({0x00, 0x00}), str("a")})), k311), ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0xA2, cat({B({0x00, 0x01}), props({}), str("a")})), k5), ReasonCode::kSuccess);
}

TEST(Suback, DecodesAndChecksReturnCodes) {
  // 3.1.1 §3.9.3 example: 0x00, 0x02, 0x80 granted/failure.
  const auto r = decode_one(frame(0x90, B({0x00, 0x0A, 0x00, 0x02, 0x80})), k311);
  ASSERT_TRUE(r) << r.error().what;
  const auto& s = std::get<Suback>(r.value());
  EXPECT_EQ(s.reason_codes.size(), 3u);
  // [MQTT-3.9.3-2]: other values are reserved in 3.1.1; 0x8F is only valid in 5.0.
  EXPECT_EQ(code(frame(0x90, B({0x00, 0x0A, 0x8F})), k311), ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0x90, B({0x00, 0x0A, 0x00, 0x8F})), k5),  // empty props, then 0x8F
            ReasonCode::kSuccess);
  EXPECT_EQ(code(frame(0x90, B({0x00, 0x0A, 0x00, 0x10})), k5), ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0x90, B({0x00, 0x0A})), k311), ReasonCode::kMalformedPacket);  // none
}

TEST(Unsuback, V311IsIdOnlyV5HasReasons) {
  EXPECT_EQ(code(frame(0xB0, B({0x00, 0x05})), k311), ReasonCode::kSuccess);
  EXPECT_EQ(code(frame(0xB0, B({0x00, 0x05, 0x00})), k311), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0xB0, B({0x00, 0x05, 0x00, 0x11})), k5), ReasonCode::kSuccess);
  EXPECT_EQ(code(frame(0xB0, B({0x00, 0x05, 0x00, 0x01})), k5), ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0xB0, B({0x00, 0x05, 0x00})), k5), ReasonCode::kMalformedPacket);
}

}  // namespace
}  // namespace tcpms::mqtt::test
