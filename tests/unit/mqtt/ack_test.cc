// CONNACK, PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ/PINGRESP, DISCONNECT, AUTH.
#include <gtest/gtest.h>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {


TEST(Connack, V311ReturnCodesMapToReasonCodes) {
  auto r = decode_one(B({0x20, 0x02, 0x01, 0x00}), k311);
  ASSERT_TRUE(r);
  EXPECT_TRUE(std::get<Connack>(r.value()).session_present);
  r = decode_one(B({0x20, 0x02, 0x00, 0x05}), k311);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<Connack>(r.value()).reason, ReasonCode::kNotAuthorized);
  EXPECT_EQ(code(B({0x20, 0x02, 0x00, 0x06}), k311), ReasonCode::kProtocolError);  // reserved
  EXPECT_EQ(code(B({0x20, 0x02, 0x02, 0x00}), k311), ReasonCode::kMalformedPacket);  // reserved flag bit
  EXPECT_EQ(code(B({0x20, 0x03, 0x00, 0x00, 0x00}), k311), ReasonCode::kMalformedPacket);
  // [MQTT-3.2.2-4]: no session with a refusal.
  EXPECT_EQ(code(B({0x20, 0x02, 0x01, 0x02}), k311), ReasonCode::kProtocolError);
}

TEST(Connack, V5ReasonAndProperties) {
  const auto r = decode_one(frame(0x20, cat({B({0x00, 0x00}), props(B({0x24, 0x01, 0x21, 0x00, 0x0A}))})), k5);
  ASSERT_TRUE(r) << r.error().what;
  const auto& c = std::get<Connack>(r.value());
  EXPECT_EQ(c.properties.number(PropertyId::kMaximumQoS), 1u);
  EXPECT_EQ(c.properties.number(PropertyId::kReceiveMaximum), 10u);
  EXPECT_EQ(code(frame(0x20, cat({B({0x00, 0x10}), props({})})), k5), ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0x20, B({0x00, 0x00})), k5), ReasonCode::kMalformedPacket);  // no Property Length
}

TEST(PublishResponse, V311IsExactlyTwoBytes) {
  for (int b0 : {0x40, 0x50, 0x62, 0x70}) {
    const auto r = decode_one(B({b0, 0x02, 0x00, 0x0A}), k311);
    ASSERT_TRUE(r) << b0;
    const auto& a = std::get<PublishResponse>(r.value());
    EXPECT_EQ(static_cast<int>(a.type), b0 >> 4);
    EXPECT_EQ(a.packet_id, 10);
    EXPECT_EQ(code(B({b0, 0x03, 0x00, 0x0A, 0x00}), k311), ReasonCode::kMalformedPacket) << b0;
    EXPECT_EQ(code(B({b0, 0x01, 0x00}), k311), ReasonCode::kMalformedPacket) << b0;
    EXPECT_EQ(code(B({b0, 0x02, 0x00, 0x00}), k311), ReasonCode::kProtocolError) << b0;  // id 0
  }
}

TEST(PublishResponse, V5ShortFormsAndReasonCodes) {
  // 5.0 §3.4.2.1: Remaining Length 2 means Success; < 4 means no properties.
  auto r = decode_one(B({0x40, 0x02, 0x00, 0x01}), k5);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<PublishResponse>(r.value()).reason, ReasonCode::kSuccess);
  r = decode_one(B({0x40, 0x03, 0x00, 0x01, 0x10}), k5);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<PublishResponse>(r.value()).reason, ReasonCode::kNoMatchingSubscribers);
  r = decode_one(frame(0x50, cat({B({0x00, 0x01, 0x80}), props(cat({B({0x1F}), str("no")}))})), k5);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(std::get<PublishResponse>(r.value()).properties.find(PropertyId::kReasonString)->text, "no");
  // PUBREL/PUBCOMP allow only 0x00 and 0x92; PUBACK does not allow 0x92.
  EXPECT_EQ(code(B({0x62, 0x03, 0x00, 0x01, 0x92}), k5), ReasonCode::kSuccess);
  EXPECT_EQ(code(B({0x62, 0x03, 0x00, 0x01, 0x10}), k5), ReasonCode::kProtocolError);
  EXPECT_EQ(code(B({0x40, 0x03, 0x00, 0x01, 0x92}), k5), ReasonCode::kProtocolError);
  // Trailing bytes after the properties.
  EXPECT_EQ(code(B({0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xAA}), k5), ReasonCode::kMalformedPacket);
}

TEST(Ping, EmptyBodies) {
  EXPECT_TRUE(std::holds_alternative<Pingreq>(decode_one(B({0xC0, 0x00}), k311).value()));
  EXPECT_TRUE(std::holds_alternative<Pingresp>(decode_one(B({0xD0, 0x00}), k5).value()));
  EXPECT_EQ(decode_packet({PacketType::kPingreq, 0, 1, 2}, view(B({0x00})), k311).error().code,
            ReasonCode::kMalformedPacket);
}

TEST(Disconnect, V311HasNoBody) {
  EXPECT_EQ(code(B({0xE0, 0x00}), k311), ReasonCode::kSuccess);
  EXPECT_EQ(code(B({0xE0, 0x01, 0x00}), k311), ReasonCode::kMalformedPacket);
}

TEST(Disconnect, V5ReasonAndProperties) {
  // 5.0 §3.14.2.1: length 0 = Normal disconnection; < 2 = no properties.
  auto r = decode_one(B({0xE0, 0x01, 0x04}), k5);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<Disconnect>(r.value()).reason, ReasonCode::kDisconnectWithWill);
  r = decode_one(frame(0xE0, cat({B({0x00}), props(B({0x11, 0, 0, 0, 0}))})), k5);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(std::get<Disconnect>(r.value()).properties.number(PropertyId::kSessionExpiryInterval), 0u);
  EXPECT_EQ(code(B({0xE0, 0x01, 0x01}), k5), ReasonCode::kProtocolError);  // not a DISCONNECT code
  EXPECT_EQ(code(frame(0xE0, cat({B({0x00}), props(B({0x23, 0, 1}))})), k5), ReasonCode::kProtocolError);
}

TEST(Auth, V5Only) {
  EXPECT_EQ(code(B({0xF0, 0x00}), k311), ReasonCode::kProtocolError);
  EXPECT_EQ(code(B({0xF0, 0x00}), k5), ReasonCode::kSuccess);
  const auto r = decode_one(frame(0xF0, cat({B({0x18}), props(cat({B({0x15}), str("SCRAM-SHA-1")}))})), k5);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(std::get<Auth>(r.value()).reason, ReasonCode::kContinueAuthentication);
  EXPECT_EQ(code(B({0xF0, 0x02, 0x10, 0x00}), k5), ReasonCode::kProtocolError);  // bad reason
  EXPECT_EQ(code(B({0xF0, 0x01, 0x18}), k5), ReasonCode::kMalformedPacket);       // no Property Length
}

TEST(ReasonCodes, V311ConnackMapping) {
  EXPECT_EQ(to_connect_return_code(ReasonCode::kUnsupportedProtocolVersion),
            ConnectReturnCode::kUnacceptableProtocolVersion);
  EXPECT_EQ(to_connect_return_code(ReasonCode::kClientIdentifierNotValid), ConnectReturnCode::kIdentifierRejected);
  EXPECT_EQ(to_connect_return_code(ReasonCode::kServerBusy), ConnectReturnCode::kServerUnavailable);
  EXPECT_STREQ(reason_code_name(ReasonCode::kMalformedPacket), "Malformed Packet");
  EXPECT_FALSE(is_valid_reason_code(PacketType::kPublish, 0x00));
}

}  // namespace
}  // namespace tcpms::mqtt::test
