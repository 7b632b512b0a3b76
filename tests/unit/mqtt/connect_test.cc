// CONNECT: MQTT 3.1 ("MQIsdp"), 3.1.1 §3.1, 5.0 §3.1.
#include <gtest/gtest.h>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {

// 3.1.1 §3.1.2.10 example variable header: "MQTT", level 4, flags 0xCE (user name, password,
// Will QoS 1, Will Flag, Clean Session), Keep Alive 10.
Buf v311_header(int flags = 0xCE) { return cat({str("MQTT"), B({0x04, flags, 0x00, 0x0A})}); }

Buf v311_full() {
  return frame(0x10, cat({v311_header(), str("client-1"), str("will/topic"), str("bye"),
                          str("user"), str("pass")}));
}

Decoded<Connect> dec(const Buf& input) {
  const Buf& wire = keep(input);
  const FrameResult f = next_frame(view(wire), 0);
  if (f.status != FrameStatus::kComplete) return f.error;
  return decode_connect(f.body);
}


TEST(Connect, DecodesSpecExample311) {
  const Buf wire = v311_full();
  const auto r = decode_connect(view(wire).subspan(2));  // this buffer, not a kept copy
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->version, ProtocolVersion::kV311);
  EXPECT_TRUE(r->clean_start);
  EXPECT_EQ(r->keep_alive_s, 10);
  EXPECT_EQ(r->client_id, "client-1");
  ASSERT_TRUE(r->will);
  EXPECT_EQ(r->will->topic, "will/topic");
  EXPECT_EQ(as_chars(r->will->payload), "bye");
  EXPECT_EQ(r->will->qos, QoS::k1);
  EXPECT_FALSE(r->will->retain);
  EXPECT_EQ(r->username, "user");
  ASSERT_TRUE(r->password);
  EXPECT_EQ(as_chars(*r->password), "pass");
  // Views into the input buffer, not copies.
  EXPECT_GE(r->client_id.data(), reinterpret_cast<const char*>(wire.data()));
  EXPECT_LT(r->client_id.data(), reinterpret_cast<const char*>(wire.data() + wire.size()));
}

TEST(Connect, DecodesMinimalWithEmptyClientId) {
  // An empty Client Identifier is a broker decision ([MQTT-3.1.3-6..8]), not a decode error.
  const auto r = dec(frame(0x10, cat({str("MQTT"), B({0x04, 0x02, 0x00, 0x3C}), str("")})));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->client_id, "");
  EXPECT_FALSE(r->will);
  EXPECT_FALSE(r->username);
  EXPECT_FALSE(r->password);
  EXPECT_EQ(r->keep_alive_s, 60);
}

TEST(Connect, DecodesMqtt31) {
  const auto r = dec(frame(0x10, cat({str("MQIsdp"), B({0x03, 0x02, 0x00, 0x0A}), str("c")})));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, ProtocolVersion::kV31);
}

TEST(Connect, Mqtt31ToleratesPasswordFlagWithoutPassword) {
  // Old 3.1 clients set the flag and send nothing; accepted only for 3.1 and only at the end.
  const auto r = dec(frame(0x10, cat({str("MQIsdp"), B({0x03, 0xC2, 0x00, 0x0A}), str("c"), str("u")})));
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_FALSE(r->password);
  EXPECT_EQ(code(frame(0x10, cat({str("MQTT"), B({0x04, 0xC2, 0x00, 0x0A}), str("c"), str("u")}))),
            ReasonCode::kMalformedPacket);
}

TEST(Connect, DecodesV5SpecExampleWithProperties) {
  // 5.0 §3.1.2.12 example: flags 0xCE, Keep Alive 10, Session Expiry Interval 10.
  const Buf wire = frame(0x10, cat({str("MQTT"), B({0x05, 0xCE, 0x00, 0x0A}),
                                    props(B({0x11, 0x00, 0x00, 0x00, 0x0A})), str("c5"),
                                    props(B({0x18, 0x00, 0x00, 0x00, 0x05})),  // Will Delay 5 s
                                    str("w"), str("payload"), str("u"), str("p")}));
  const auto r = dec(wire);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->version, ProtocolVersion::kV5);
  EXPECT_EQ(r->properties.number(PropertyId::kSessionExpiryInterval), 10u);
  ASSERT_TRUE(r->will);
  EXPECT_EQ(r->will->properties.number(PropertyId::kWillDelayInterval), 5u);
  EXPECT_EQ(r->client_id, "c5");
}

TEST(Connect, V5AllowsPasswordWithoutUserName) {
  const auto r = dec(frame(0x10, cat({str("MQTT"), B({0x05, 0x42, 0x00, 0x0A}), props({}), str("c"), str("tok")})));
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_FALSE(r->username);
  EXPECT_TRUE(r->password);
}

TEST(Connect, UnsupportedLevelOrNameIsDistinguishable) {
  // [MQTT-3.1.2-2]: the broker answers CONNACK 0x01 then closes.
  for (const Buf& h : {cat({str("MQTT"), B({0x06})}), cat({str("MQTT"), B({0x03})}),
                       cat({str("MQIsdp"), B({0x04})}), cat({str("MQTX"), B({0x04})})}) {
    const Buf wire = frame(0x10, cat({h, B({0x02, 0x00, 0x0A}), str("c")}));
    EXPECT_EQ(code(wire), ReasonCode::kUnsupportedProtocolVersion);
    EXPECT_FALSE(peek_connect_version(view(wire).subspan(2)));
  }
  EXPECT_EQ(peek_connect_version(view(v311_full()).subspan(2)), ProtocolVersion::kV311);
}

TEST(Connect, ReservedFlagMustBeZero) {
  // [MQTT-3.1.2-3]
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x03), str("c")}))), ReasonCode::kMalformedPacket);
}

TEST(Connect, WillQosAndRetainNeedWillFlag) {
  // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15] (3.1.1); 5.0 [MQTT-3.1.2-11], [MQTT-3.1.2-13].
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x0A), str("c")}))), ReasonCode::kMalformedPacket);  // QoS 1
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x12), str("c")}))), ReasonCode::kMalformedPacket);  // QoS 2
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x22), str("c")}))), ReasonCode::kMalformedPacket);  // Retain
}

TEST(Connect, WillQos3IsMalformed) {
  // [MQTT-3.1.2-14] (5.0: [MQTT-3.1.2-12])
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x1E), str("c"), str("t"), str("m")}))),
            ReasonCode::kMalformedPacket);
}

TEST(Connect, WillFlagNeedsTopicAndMessage) {
  // [MQTT-3.1.2-9]
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x06), str("c")}))), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x06), str("c"), str("t")}))), ReasonCode::kMalformedPacket);
}

TEST(Connect, WillTopicMustBeATopicName) {
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x06), str("c"), str("a/#"), str("m")}))),
            ReasonCode::kTopicNameInvalid);
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x06), str("c"), str("\xED\xA0\x80"), str("m")}))),
            ReasonCode::kMalformedPacket);  // [MQTT-3.1.3-10]
}

TEST(Connect, PasswordWithoutUserNameIs311ProtocolError) {
  // [MQTT-3.1.2-22]
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x42), str("c"), str("p")}))), ReasonCode::kProtocolError);
}

TEST(Connect, FlaggedFieldsMustBePresent) {
  // [MQTT-3.1.2-19], [MQTT-3.1.2-21]
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x82), str("c")}))), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0xC2), str("c"), str("u")}))), ReasonCode::kMalformedPacket);
}

TEST(Connect, UnflaggedFieldsMustBeAbsent) {
  // [MQTT-3.1.2-18], [MQTT-3.1.2-20]: extra bytes after the last flagged field.
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x02), str("c"), str("u")}))), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x82), str("c"), str("u"), str("p")}))),
            ReasonCode::kMalformedPacket);
}

TEST(Connect, StringsMustBeValidUtf8) {
  // [MQTT-3.1.3-4] client id, [MQTT-3.1.3-11] user name, [MQTT-1.5.3-2] no U+0000.
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x02), str("\xC3")}))), ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x02), str(std::string_view("a\0", 2))}))),
            ReasonCode::kMalformedPacket);
  EXPECT_EQ(code(frame(0x10, cat({v311_header(0x82), str("c"), str("\xFF")}))), ReasonCode::kMalformedPacket);
}

TEST(Connect, PasswordIsBinary) {
  const auto r = dec(frame(0x10, cat({v311_header(0xC2), str("c"), str("u"), str("\xFF\xFE")})));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->password->size(), 2u);
}

TEST(Connect, TruncationAnywhereIsMalformed) {
  const Buf wire = v311_full();
  const Bytes body = view(wire).subspan(2);
  for (std::size_t n = 0; n < body.size(); ++n) {
    const auto r = decode_connect(body.first(n));
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().code, ReasonCode::kMalformedPacket) << n;
  }
}

TEST(Connect, V5PropertyErrorsPropagate) {
  // Receive Maximum 0 is a Protocol Error (5.0 §3.1.2.11.3); Topic Alias is not a CONNECT property.
  EXPECT_EQ(code(frame(0x10, cat({str("MQTT"), B({0x05, 0x02, 0x00, 0x0A}), props(B({0x21, 0, 0})), str("c")}))),
            ReasonCode::kProtocolError);
  EXPECT_EQ(code(frame(0x10, cat({str("MQTT"), B({0x05, 0x06, 0x00, 0x0A}), props({}), str("c"),
                                  props(B({0x23, 0, 1})), str("t"), str("m")}))),
            ReasonCode::kProtocolError);
  // A will's Response Topic is a Topic Name too [MQTT-3.3.2-14].
  EXPECT_EQ(code(frame(0x10, cat({str("MQTT"), B({0x05, 0x06, 0x00, 0x0A}), props({}), str("c"),
                                  props(cat({B({0x08}), str("reply/#")})), str("t"), str("m")}))),
            ReasonCode::kProtocolError);
}

}  // namespace
}  // namespace tcpms::mqtt::test
