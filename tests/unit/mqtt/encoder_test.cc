// Encoders: exact bytes for the packets the broker sends, and decode(encode(x)) == x.
#include <gtest/gtest.h>

#include <array>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {

TEST(Encode, ConnackBothVersions) {
  Connack c{true, ReasonCode::kSuccess, {}};
  EXPECT_EQ(encode_to_vec(c, k311), B({0x20, 0x02, 0x01, 0x00}));
  EXPECT_EQ(encode_to_vec(c, k5), B({0x20, 0x03, 0x01, 0x00, 0x00}));
  // 3.1 has no Session Present: the byte is reserved and 0, whatever the session, and it is
  // not read as a flag either.
  EXPECT_EQ(encode_to_vec(c, ProtocolVersion::kV31), B({0x20, 0x02, 0x00, 0x00}));
  const auto d = decode_connack(view(B({0x01, 0x00})), ProtocolVersion::kV31);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->session_present);
  // [MQTT-3.1.2-2]: the answer to an unknown protocol level; session present is forced off.
  c.reason = ReasonCode::kUnsupportedProtocolVersion;
  EXPECT_EQ(encode_to_vec(c, k311), B({0x20, 0x02, 0x00, 0x01}));
  EXPECT_EQ(encode_to_vec(c, k5), B({0x20, 0x03, 0x00, 0x84, 0x00}));
}

TEST(Encode, ConnackWithBuiltProperties) {
  std::array<std::byte, 64> buf;
  PropertyBuilder b(buf);
  b.add(PropertyId::kTopicAliasMaximum, 10).add(PropertyId::kAssignedClientIdentifier, "id");
  ASSERT_TRUE(b.ok());
  const Connack c{false, ReasonCode::kSuccess, b.properties()};
  EXPECT_EQ(encode_to_vec(c, k5),
            cat({B({0x20, 0x0B, 0x00, 0x00, 0x08, 0x22, 0x00, 0x0A, 0x12}), str("id")}));
}

TEST(Encode, PublishAndHeaderOnly) {
  const Buf payload = raw("hello");
  Publish p;
  p.qos = QoS::k1;
  p.packet_id = 10;
  p.topic = "a/b";
  p.payload = view(payload);
  const Buf full = encode_to_vec(p, k311);
  EXPECT_EQ(full, frame(0x32, cat({str("a/b"), B({0x00, 0x0A}), raw("hello")})));
  // The header-only form plus the shared payload is byte-identical to the full packet.
  std::array<std::byte, 32> hdr;
  const std::size_t n = encode_publish_header(p, k311, hdr);
  ASSERT_EQ(n, publish_header_size(p, k311));
  EXPECT_EQ(cat({Buf(hdr.data(), hdr.data() + n), payload}), full);
  // 5.0 adds the Property Length (0 here).
  EXPECT_EQ(encode_to_vec(p, k5), frame(0x32, cat({str("a/b"), B({0x00, 0x0A, 0x00}), raw("hello")})));
}

TEST(Encode, PublishHeaderCountsPayloadInRemainingLength) {
  const Buf payload(300, std::byte{'x'});
  Publish p;
  p.topic = "t";
  p.payload = view(payload);
  std::array<std::byte, 16> hdr;
  const std::size_t n = encode_publish_header(p, k311, hdr);
  // 300 + 3 (topic) = 303 = 0xAF 0x02.
  EXPECT_EQ(Buf(hdr.data(), hdr.data() + n), B({0x30, 0xAF, 0x02, 0x00, 0x01, 't'}));
}

TEST(Encode, RefusesWhatTheDecoderWouldReject) {
  Publish p;
  p.topic = "t";
  p.qos = QoS::k1;  // packet id 0 [MQTT-2.3.1-1]
  EXPECT_EQ(encoded_size(p, k311), 0u);
  p.qos = QoS::k0;
  p.dup = true;  // [MQTT-3.3.1-2]
  EXPECT_EQ(encoded_size(p, k311), 0u);
  Connect c;
  c.password = view(raw("x"));  // [MQTT-3.1.2-22] before 5.0
  EXPECT_EQ(encoded_size(c), 0u);
  c.version = k5;
  EXPECT_NE(encoded_size(c), 0u);
  EXPECT_EQ(encoded_size(Auth{}, k311), 0u);
  EXPECT_EQ(encoded_size(Suback{1, {}, {}}, k311), 0u);  // no reason codes
  EXPECT_EQ(subscribe_size(1, {}, {}, k311), 0u);        // [MQTT-3.8.3-3]
  const std::string big(70000, 'a');
  Publish q;
  q.topic = big;  // > 65535 bytes
  EXPECT_EQ(encoded_size(q, k311), 0u);
}

TEST(Encode, TooSmallBufferWritesNothing) {
  Publish p;
  p.topic = "topic";
  std::array<std::byte, 4> small;
  EXPECT_EQ(encode(p, k311, small), 0u);
  EXPECT_EQ(encode_publish_header(p, k311, small), 0u);
}

TEST(Encode, ShortFormsOfV5Acks) {
  PublishResponse a{PacketType::kPuback, 7, ReasonCode::kSuccess, {}};
  EXPECT_EQ(encode_to_vec(a, k5), B({0x40, 0x02, 0x00, 0x07}));
  a.reason = ReasonCode::kNoMatchingSubscribers;
  EXPECT_EQ(encode_to_vec(a, k5), B({0x40, 0x03, 0x00, 0x07, 0x10}));
  EXPECT_EQ(encode_to_vec(a, k311), B({0x40, 0x02, 0x00, 0x07}));
  a.type = PacketType::kPubrel;  // flags 0010 [MQTT-3.6.1-1]
  a.reason = ReasonCode::kSuccess;
  EXPECT_EQ(encode_to_vec(a, k311), B({0x62, 0x02, 0x00, 0x07}));
  EXPECT_EQ(encode_to_vec(Disconnect{}, k5), B({0xE0, 0x00}));
  EXPECT_EQ(encode_to_vec(Disconnect{ReasonCode::kSessionTakenOver, {}}, k5), B({0xE0, 0x01, 0x8E}));
  EXPECT_EQ(encode_to_vec(Disconnect{ReasonCode::kSessionTakenOver, {}}, k311), B({0xE0, 0x00}));
  EXPECT_EQ(encode_to_vec(Pingresp{}, k311), B({0xD0, 0x00}));
  EXPECT_EQ(encode_to_vec(Pingreq{}, k5), B({0xC0, 0x00}));
  EXPECT_EQ(encode_to_vec(Auth{ReasonCode::kContinueAuthentication, {}}, k5), B({0xF0, 0x02, 0x18, 0x00}));
}

TEST(Encode, SubackMapsFailuresFor311) {
  const Buf codes = B({0x00, 0x01, 0x8F});
  const Suback s{5, {}, view(codes)};
  EXPECT_EQ(encode_to_vec(s, k311), B({0x90, 0x05, 0x00, 0x05, 0x00, 0x01, 0x80}));
  EXPECT_EQ(encode_to_vec(s, k5), B({0x90, 0x06, 0x00, 0x05, 0x00, 0x00, 0x01, 0x8F}));
  EXPECT_EQ(encode_to_vec(Unsuback{5, {}, view(codes)}, k311), B({0xB0, 0x02, 0x00, 0x05}));
}

TEST(Encode, ClientSubscribeAndUnsubscribe) {
  const Subscription subs[] = {{"a/b", {QoS::k1}}, {"c/d", {QoS::k2, true, false, RetainHandling::kSendIfNew}}};
  Buf out(subscribe_size(10, subs, {}, k311));
  ASSERT_EQ(encode_subscribe(10, subs, {}, k311, out), out.size());
  // The 3.1.1 §3.8.3.1 example bytes; 3.x drops the 5.0-only option bits.
  EXPECT_EQ(out, frame(0x82, cat({B({0x00, 0x0A}), str("a/b"), B({0x01}), str("c/d"), B({0x02})})));
  out.resize(subscribe_size(10, subs, {}, k5));
  ASSERT_EQ(encode_subscribe(10, subs, {}, k5, out), out.size());
  EXPECT_EQ(out, frame(0x82, cat({B({0x00, 0x0A, 0x00}), str("a/b"), B({0x01}), str("c/d"), B({0x16})})));
  const std::string_view filters[] = {"a/b", "c/d"};
  out.resize(unsubscribe_size(11, filters, {}, k311));
  ASSERT_EQ(encode_unsubscribe(11, filters, {}, k311, out), out.size());
  EXPECT_EQ(out, frame(0xA2, cat({B({0x00, 0x0B}), str("a/b"), str("c/d")})));
}

// Every packet that decodes re-encodes to the same bytes when it was in shortest form.
TEST(RoundTrip, CanonicalPacketsAreByteIdentical) {
  struct Case {
    Buf wire;
    ProtocolVersion v;
  };
  const Case cases[] = {
      {frame(0x10, cat({str("MQTT"), B({0x04, 0xCE, 0x00, 0x0A}), str("c"), str("w"), str("m"), str("u"), str("p")})), k311},
      {frame(0x10, cat({str("MQIsdp"), B({0x03, 0x02, 0x00, 0x0A}), str("c")})), ProtocolVersion::kV31},
      {frame(0x10, cat({str("MQTT"), B({0x05, 0x2E, 0x00, 0x0A}), props(B({0x11, 0, 0, 0, 9})), str("c"),
                        props(B({0x01, 0x01})), str("w"), str("m")})), k5},
      {B({0x20, 0x02, 0x01, 0x00}), k311},
      {frame(0x20, cat({B({0x00, 0x87}), props(cat({B({0x1F}), str("nope")}))})), k5},
      {frame(0x3D, cat({str("a/b"), B({0x00, 0x0A}), raw("payload")})), k311},
      {frame(0x30, cat({str(""), props(B({0x23, 0x00, 0x01})), raw("p")})), k5},
      {B({0x40, 0x02, 0x00, 0x01}), k311},
      {B({0x50, 0x03, 0x00, 0x01, 0x80}), k5},
      {frame(0x82, cat({B({0x00, 0x0A}), str("a/b"), B({0x01})})), k311},
      {frame(0x82, cat({B({0x00, 0x0A}), props(B({0x0B, 0x01})), str("$share/g/a"), B({0x21})})), k5},
      {B({0x90, 0x03, 0x00, 0x0A, 0x80}), k311},
      {frame(0xA2, cat({B({0x00, 0x0B}), str("a/b")})), k311},
      {B({0xB0, 0x04, 0x00, 0x0B, 0x00, 0x11}), k5},
      {B({0xC0, 0x00}), k311},
      {B({0xD0, 0x00}), k5},
      {B({0xE0, 0x00}), k311},
      {B({0xE0, 0x01, 0x04}), k5},
      {frame(0xF0, cat({B({0x19}), props(cat({B({0x15}), str("m")}))})), k5},
  };
  for (const Case& c : cases) {
    const auto d = decode_one(c.wire, c.v);
    ASSERT_TRUE(d) << d.error().what << " first byte " << static_cast<int>(c.wire[0]);
    EXPECT_EQ(encode_to_vec(d.value(), c.v), c.wire) << "first byte " << static_cast<int>(c.wire[0]);
  }
}

}  // namespace
}  // namespace tcpms::mqtt::test
