// MQTT 5.0 properties: 5.0 §2.2.2 and the per-property rules of §3.
#include <gtest/gtest.h>

#include "mqtt/byte_reader.h"
#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {

Decoded<Properties> parse(const Buf& list, PropertyContext ctx) {
  static Buf storage;  // keep the bytes alive for the returned view
  storage = props(list);
  detail::ByteReader in(view(storage));
  return decode_properties(in, ctx);
}

ReasonCode code_of(const Buf& list, PropertyContext ctx) {
  const auto r = parse(list, ctx);
  return r ? ReasonCode::kSuccess : r.error().code;
}

TEST(Properties, EmptyListIsValid) {
  const auto r = parse({}, PropertyContext::kConnect);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(r->begin(), r->end());
}

TEST(Properties, ParsesEveryValueType) {
  const Buf list = cat({B({0x01, 0x01}),                     // Payload Format Indicator = 1
                        B({0x02, 0x00, 0x00, 0x0E, 0x10}),   // Message Expiry = 3600
                        B({0x23, 0x00, 0x05}),               // Topic Alias = 5
                        B({0x0B, 0x80, 0x01}),               // Subscription Identifier = 128
                        B({0x03}), str("text/plain"),        // Content Type
                        B({0x09}), str("\x01\x02"),          // Correlation Data
                        B({0x26}), str("k"), str("v")});     // User Property
  const auto r = parse(list, PropertyContext::kPublish);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->number(PropertyId::kPayloadFormatIndicator), 1u);
  EXPECT_EQ(r->number(PropertyId::kMessageExpiryInterval), 3600u);
  EXPECT_EQ(r->number(PropertyId::kTopicAlias), 5u);
  EXPECT_EQ(r->number(PropertyId::kSubscriptionIdentifier), 128u);
  EXPECT_EQ(r->find(PropertyId::kContentType)->text, "text/plain");
  EXPECT_EQ(r->find(PropertyId::kCorrelationData)->binary.size(), 2u);
  const auto up = r->find(PropertyId::kUserProperty);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->text, "k");
  EXPECT_EQ(up->text2, "v");
  EXPECT_FALSE(r->find(PropertyId::kResponseTopic));
  int count = 0;
  for (const Property& p : *r) {
    (void)p;
    ++count;
  }
  EXPECT_EQ(count, 7);
}

TEST(Properties, UnknownIdentifierIsMalformed) {
  EXPECT_EQ(code_of(B({0x04, 0x00}), PropertyContext::kPublish), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code_of(B({0x80, 0x01}), PropertyContext::kPublish), ReasonCode::kMalformedPacket);
}

TEST(Properties, TruncatedValueOrLengthIsMalformed) {
  EXPECT_EQ(code_of(B({0x02, 0x00, 0x00}), PropertyContext::kPublish), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code_of(B({0x03, 0x00, 0x05, 'a'}), PropertyContext::kPublish), ReasonCode::kMalformedPacket);
  // Property Length larger than the bytes that follow.
  Buf wire = B({0x05, 0x01, 0x00});
  detail::ByteReader in(view(wire));
  EXPECT_EQ(decode_properties(in, PropertyContext::kPublish).error().code, ReasonCode::kMalformedPacket);
}

TEST(Properties, PropertyNotAllowedInPacketIsProtocolError) {
  // Topic Alias belongs to PUBLISH only; Session Expiry not in PUBLISH; Will Delay only in Will.
  EXPECT_EQ(code_of(B({0x23, 0x00, 0x01}), PropertyContext::kConnect), ReasonCode::kProtocolError);
  EXPECT_EQ(code_of(B({0x11, 0, 0, 0, 1}), PropertyContext::kPublish), ReasonCode::kProtocolError);
  EXPECT_EQ(code_of(B({0x18, 0, 0, 0, 1}), PropertyContext::kConnect), ReasonCode::kProtocolError);
  EXPECT_EQ(code_of(B({0x18, 0, 0, 0, 1}), PropertyContext::kWill), ReasonCode::kSuccess);
  EXPECT_EQ(code_of(cat({B({0x1F}), str("why")}), PropertyContext::kSubscribe), ReasonCode::kProtocolError);
}

TEST(Properties, RepeatedPropertyIsProtocolError) {
  EXPECT_EQ(code_of(B({0x23, 0x00, 0x01, 0x23, 0x00, 0x02}), PropertyContext::kPublish),
            ReasonCode::kProtocolError);
  EXPECT_EQ(code_of(B({0x21, 0x00, 0x01, 0x21, 0x00, 0x01}), PropertyContext::kConnect),
            ReasonCode::kProtocolError);
}

TEST(Properties, UserPropertyMayRepeat) {
  const Buf list = cat({B({0x26}), str("a"), str("1"), B({0x26}), str("a"), str("2")});
  EXPECT_EQ(code_of(list, PropertyContext::kConnect), ReasonCode::kSuccess);
}

TEST(Properties, SubscriptionIdentifierRepeatsInPublishOnly) {
  // 5.0 §3.3.2.3.8 (PUBLISH may carry several) vs §3.8.2.1.2 (SUBSCRIBE: once).
  const Buf two = B({0x0B, 0x01, 0x0B, 0x02});
  EXPECT_EQ(code_of(two, PropertyContext::kPublish), ReasonCode::kSuccess);
  EXPECT_EQ(code_of(two, PropertyContext::kSubscribe), ReasonCode::kProtocolError);
}

TEST(Properties, ZeroValuesThatTheSpecForbid) {
  EXPECT_EQ(code_of(B({0x21, 0x00, 0x00}), PropertyContext::kConnect), ReasonCode::kProtocolError);  // Receive Maximum
  EXPECT_EQ(code_of(B({0x27, 0, 0, 0, 0}), PropertyContext::kConnect), ReasonCode::kProtocolError);   // Maximum Packet Size
  // [MQTT-3.3.2-8]: Topic Alias 0 is answered with 0x94 Topic Alias invalid (5.0 §3.3.4).
  EXPECT_EQ(code_of(B({0x23, 0x00, 0x00}), PropertyContext::kPublish), ReasonCode::kTopicAliasInvalid);
  EXPECT_EQ(code_of(B({0x0B, 0x00}), PropertyContext::kSubscribe), ReasonCode::kProtocolError);      // Subscription Id
}

TEST(Properties, BooleanBytesMustBeZeroOrOne) {
  EXPECT_EQ(code_of(B({0x17, 0x02}), PropertyContext::kConnect), ReasonCode::kProtocolError);  // Request Problem Info
  EXPECT_EQ(code_of(B({0x19, 0x02}), PropertyContext::kConnect), ReasonCode::kProtocolError);  // Request Response Info
  EXPECT_EQ(code_of(B({0x24, 0x02}), PropertyContext::kConnack), ReasonCode::kProtocolError);  // Maximum QoS
  EXPECT_EQ(code_of(B({0x01, 0x02}), PropertyContext::kPublish), ReasonCode::kProtocolError);  // Payload Format
  EXPECT_EQ(code_of(B({0x17, 0x01}), PropertyContext::kConnect), ReasonCode::kSuccess);
}

TEST(Properties, AuthenticationDataNeedsMethod) {
  EXPECT_EQ(code_of(cat({B({0x16}), str("x")}), PropertyContext::kConnect), ReasonCode::kProtocolError);
  EXPECT_EQ(code_of(cat({B({0x15}), str("SCRAM"), B({0x16}), str("x")}), PropertyContext::kConnect),
            ReasonCode::kSuccess);
}

TEST(Properties, StringsMustBeValidUtf8) {
  EXPECT_EQ(code_of(cat({B({0x03}), str("\xC0\x80")}), PropertyContext::kPublish), ReasonCode::kMalformedPacket);
  // [MQTT-1.5.7-1]: both halves of a UTF-8 String Pair.
  EXPECT_EQ(code_of(cat({B({0x26}), str("ok"), str(std::string_view("\0", 1))}), PropertyContext::kPublish),
            ReasonCode::kMalformedPacket);
  // Binary Data is not UTF-8 checked.
  EXPECT_EQ(code_of(cat({B({0x09}), str("\xFF\x00")}), PropertyContext::kPublish), ReasonCode::kSuccess);
}

TEST(PropertyBuilder, BuildsWhatTheDecoderAccepts) {
  std::byte buf[128];
  PropertyBuilder b(buf);
  b.add(PropertyId::kSessionExpiryInterval, 3600)
      .add(PropertyId::kReceiveMaximum, 20)
      .add(PropertyId::kMaximumQoS, 1)
      .add(PropertyId::kAssignedClientIdentifier, "auto-1")
      .add_user_property("region", "eu");
  ASSERT_TRUE(b.ok());
  Buf wire = props(Buf(buf, buf + b.size()));
  detail::ByteReader in(view(wire));
  const auto r = decode_properties(in, PropertyContext::kConnack);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->number(PropertyId::kSessionExpiryInterval), 3600u);
  EXPECT_EQ(r->number(PropertyId::kReceiveMaximum), 20u);
  EXPECT_EQ(r->find(PropertyId::kAssignedClientIdentifier)->text, "auto-1");
  EXPECT_EQ(r->find(PropertyId::kUserProperty)->text2, "eu");
}

TEST(PropertyBuilder, OverflowAndTypeMismatchFail) {
  std::byte small[4];
  PropertyBuilder b(small);
  b.add(PropertyId::kSessionExpiryInterval, 1);  // 5 bytes
  EXPECT_FALSE(b.ok());
  EXPECT_TRUE(b.properties().empty());

  std::byte buf[16];
  EXPECT_FALSE(PropertyBuilder(buf).add(PropertyId::kContentType, 5).ok());      // string id, number
  EXPECT_FALSE(PropertyBuilder(buf).add(PropertyId::kTopicAlias, 70000).ok());   // > 2 bytes
  EXPECT_FALSE(PropertyBuilder(buf).add(PropertyId::kTopicAlias, "x").ok());     // number id, string
}

}  // namespace
}  // namespace tcpms::mqtt::test
