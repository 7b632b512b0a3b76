// decode_session_image(encode_session_image(x)) == x for every part of a session, and clean
// errors (never a crash) for truncated, forged or inconsistent input.
#include "broker/session_image.h"
#include "broker/session.h"

#include <gtest/gtest.h>

#include <random>

namespace tcpms::broker {
namespace {

using State = OutMessage::State;

OutMessage msg(std::string_view topic, std::string_view payload, mqtt::QoS qos, uint16_t id,
               State state, bool retain = false) {
  OutMessage m;
  if (state != State::kWaitPubcomp) {
    m.topic = SharedBytes::copy_of(as_bytes(topic));
    m.payload = SharedBytes::copy_of(as_bytes(payload));
  }
  m.qos = qos;
  m.packet_id = id;
  m.state = state;
  m.retain = retain;
  return m;
}

SessionImage sample() {
  SessionImage img;
  img.version = mqtt::ProtocolVersion::kV31;
  img.last_packet_id = 65535;
  img.subscriptions = {{"a/+/c", mqtt::QoS::k0}, {"#", mqtt::QoS::k2}, {"x/y", mqtt::QoS::k1}};
  img.inflight.push_back(msg("t/1", "one", mqtt::QoS::k1, 7, State::kWaitPuback));
  img.inflight.push_back(msg("t/2", std::string(70000, 'z'), mqtt::QoS::k2, 65535, State::kWaitPubrec, true));
  img.inflight.push_back(msg("", "", mqtt::QoS::k2, 1, State::kWaitPubcomp));
  img.queued.push_back(msg("q/1", "", mqtt::QoS::k1, 0, State::kQueued, true));
  img.queued.push_back(msg("q/2", "two", mqtt::QoS::k2, 0, State::kQueued));
  img.incoming = {3, 65535, 9};
  return img;
}

void expect_same(const OutMessage& a, const OutMessage& b) {
  EXPECT_EQ(as_chars(a.topic.view()), as_chars(b.topic.view()));
  EXPECT_EQ(as_chars(a.payload.view()), as_chars(b.payload.view()));
  EXPECT_EQ(a.qos, b.qos);
  EXPECT_EQ(a.packet_id, b.packet_id);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.retain, b.retain);
}

constexpr uint64_t kNow = 1'000'000;  // steady-clock ms of the encoder and the decoder

std::string encoded(const SessionImage& img) {
  std::string out;
  encode_session_image(img, out, kNow);
  return out;
}

SessionImageResult decoded(std::string_view bytes, uint64_t now = kNow) {
  return decode_session_image(as_bytes(bytes), now);
}

TEST(SessionImage, RoundTripEveryPart) {
  const SessionImage img = sample();
  const std::string bytes = encoded(img);
  SessionImageResult r = decoded(bytes);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.image.version, img.version);
  EXPECT_EQ(r.image.last_packet_id, img.last_packet_id);
  EXPECT_EQ(r.image.subscriptions, img.subscriptions);
  ASSERT_EQ(r.image.inflight.size(), img.inflight.size());
  for (size_t i = 0; i < img.inflight.size(); ++i) expect_same(r.image.inflight[i], img.inflight[i]);
  ASSERT_EQ(r.image.queued.size(), img.queued.size());
  for (size_t i = 0; i < img.queued.size(); ++i) expect_same(r.image.queued[i], img.queued[i]);
  EXPECT_EQ(r.image.incoming, img.incoming);
  // A kWaitPubcomp entry carries no payload on the wire [MQTT-4.3.3-1].
  EXPECT_TRUE(r.image.inflight[2].payload.empty());
}

TEST(SessionImage, EmptySession) {
  SessionImage img;
  SessionImageResult r = decoded(encoded(img));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.image.subscriptions.empty());
  EXPECT_TRUE(r.image.inflight.empty());
  EXPECT_EQ(r.image.version, mqtt::ProtocolVersion::kV311);
}

TEST(SessionImage, EveryTruncationIsAnError) {
  const std::string bytes = encoded(sample());
  for (size_t n = 0; n < bytes.size(); n += (n < 200 ? 1 : 997)) {
    SessionImageResult r = decoded(std::string_view(bytes).substr(0, n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_NE(r.error, nullptr);
  }
}

TEST(SessionImage, RefusesInconsistentInput) {
  auto refused = [](const SessionImage& img) {
    return !decoded(encoded(img)).ok();
  };
  SessionImage img = sample();
  img.inflight[0].packet_id = img.inflight[1].packet_id;
  EXPECT_TRUE(refused(img)) << "duplicate in-flight id";
  img = sample();
  img.inflight[0].packet_id = 0;
  EXPECT_TRUE(refused(img)) << "packet id 0";
  img = sample();
  img.inflight[0].qos = mqtt::QoS::k2;  // kWaitPuback with QoS 2
  EXPECT_TRUE(refused(img));
  img = sample();
  img.inflight[0].state = State::kQueued;
  EXPECT_TRUE(refused(img)) << "queued state in flight";
  img = sample();
  img.queued[0].qos = mqtt::QoS::k0;
  EXPECT_TRUE(refused(img)) << "QoS 0 queued";
  img = sample();
  img.queued[0].topic = SharedBytes::copy_of(as_bytes("a/#"));
  EXPECT_TRUE(refused(img)) << "wildcard in a topic name";
  img = sample();
  img.subscriptions[0].filter = "a/#/b";
  EXPECT_TRUE(refused(img)) << "invalid filter";
  img = sample();
  img.incoming.push_back(3);
  EXPECT_TRUE(refused(img)) << "duplicate inbound id";

  std::string bytes = encoded(sample());
  bytes.push_back('x');
  EXPECT_STREQ(decoded(bytes).error, "trailing bytes after session image");
  bytes = encoded(sample());
  bytes[3] = 3;
  EXPECT_STREQ(decoded(bytes).error, "unknown session image version");
  bytes = encoded(sample());
  bytes[4] = 6;
  EXPECT_FALSE(decoded(bytes).ok()) << "unknown protocol level";
  EXPECT_FALSE(decoded("garbage").ok());
}

TEST(SessionImage, Mqtt5StateRoundTrips) {
  SessionImage img;
  img.version = mqtt::ProtocolVersion::kV5;
  img.session_expiry_s = 3600;
  img.subscriptions = {{"a/+", mqtt::QoS::k1, kSubNoLocal | kSubRetainAsPublished, 268'435'455},
                       {"b", mqtt::QoS::k2, 0, 0}};
  OutMessage q = msg("a/1", "body", mqtt::QoS::k1, 0, State::kQueued);
  const std::byte props[] = {std::byte{0x01}, std::byte{0x01}, std::byte{0x03}, std::byte{0x00},
                             std::byte{0x01}, std::byte{'x'}};  // format 1, content type "x"
  q.props.wire = SharedBytes::copy_of(ByteView(props, sizeof props));
  q.props.expires_at_ms = kNow + 30'000;
  q.sub_ids = subscription_id_props(std::vector<uint32_t>{7});
  img.queued.push_back(q);
  OutMessage f = msg("b", "in flight", mqtt::QoS::k2, 4, State::kWaitPubrec);
  f.props.expires_at_ms = kNow + 1;
  img.inflight.push_back(f);
  SessionImageResult r = decoded(encoded(img), kNow + 500'000);  // decoded later elsewhere
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.image.version, mqtt::ProtocolVersion::kV5);
  EXPECT_EQ(r.image.session_expiry_s, 3600u);
  EXPECT_EQ(r.image.subscriptions, img.subscriptions);
  ASSERT_EQ(r.image.queued.size(), 1u);
  EXPECT_EQ(as_chars(r.image.queued[0].props.wire.view()), as_chars(q.props.wire.view()));
  EXPECT_EQ(as_chars(r.image.queued[0].sub_ids.view()), as_chars(q.sub_ids.view()));
  // The time left travels, not the deadline: 30 s from when it is decoded.
  EXPECT_EQ(r.image.queued[0].props.expires_at_ms, kNow + 500'000 + 30'000);
  EXPECT_EQ(r.image.inflight[0].props.expires_at_ms, kNow + 500'000 + 1);
  // Properties that would not decode are refused.
  OutMessage bad = q;
  const std::byte junk[] = {std::byte{0x7F}, std::byte{0x00}};
  bad.props.wire = SharedBytes::copy_of(ByteView(junk, 2));
  img.queued = {bad};
  EXPECT_STREQ(decoded(encoded(img)).error, "invalid message properties");
  // A 3.x image with a session expiry is inconsistent.
  img = SessionImage{};
  img.session_expiry_s = 5;
  EXPECT_FALSE(decoded(encoded(img)).ok());
}

TEST(SessionImage, Version1FromAnOlderProcessStillDecodes) {
  // "TSI", version 1, level 4, last id 9; one subscription ("a", QoS 1); one queued message.
  std::string v1("TSI\x01\x04\x09\x00", 7);
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) v1.push_back(static_cast<char>(v >> (8 * i)));
  };
  u32(1);
  v1.append("\x01\x00" "a" "\x01", 4);
  u32(0);  // in flight
  u32(1);  // queued
  v1.append("\x01\x00" "\x01\x00" "q", 5);  // QoS 1, retain 0, topic "q"
  u32(2);
  v1.append("hi");
  u32(0);  // inbound
  SessionImageResult r = decoded(v1);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.image.last_packet_id, 9);
  ASSERT_EQ(r.image.subscriptions.size(), 1u);
  EXPECT_EQ(r.image.subscriptions[0].filter, "a");
  ASSERT_EQ(r.image.queued.size(), 1u);
  EXPECT_EQ(as_chars(r.image.queued[0].payload.view()), "hi");
}

TEST(SessionImage, ForgedCountsDoNotAllocate) {
  // Header, then a subscription count of 2^32-1 with nothing behind it.
  std::string bytes = encoded(SessionImage{});
  bytes.resize(12);
  bytes.append("\xff\xff\xff\xff", 4);
  SessionImageResult r = decoded(bytes);
  EXPECT_FALSE(r.ok());
}

TEST(SessionImage, RandomBytesNeverCrash) {
  std::mt19937 rng(42);
  const std::string good = encoded(sample());
  for (int i = 0; i < 20000; ++i) {
    std::string b = good;
    // Flip a few bytes of a valid image, or cut it, or both.
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
      b[rng() % b.size()] = static_cast<char>(rng());
    if (rng() % 2) b.resize(rng() % b.size());
    SessionImageResult r = decoded(b);
    if (!r.ok()) {
      EXPECT_NE(r.error, nullptr);
    }
  }
}

TEST(SessionQueuesRestore, KeepsIdsStatesAndOrder) {
  SessionQueues q;
  q.set_last_packet_id(10);
  EXPECT_TRUE(q.restore_inflight(msg("t", "a", mqtt::QoS::k1, 5, State::kWaitPuback)));
  EXPECT_TRUE(q.restore_inflight(msg("t", "b", mqtt::QoS::k2, 11, State::kWaitPubrec)));
  EXPECT_TRUE(q.restore_inflight(msg("", "", mqtt::QoS::k2, 12, State::kWaitPubcomp)));
  EXPECT_FALSE(q.restore_inflight(msg("t", "c", mqtt::QoS::k1, 5, State::kWaitPuback)));  // in use
  EXPECT_FALSE(q.restore_inflight(msg("t", "c", mqtt::QoS::k1, 0, State::kWaitPuback)));
  EXPECT_FALSE(q.restore_inflight(msg("t", "c", mqtt::QoS::k1, 6, State::kQueued)));
  ASSERT_EQ(q.inflight().size(), 3u);
  EXPECT_EQ(q.inflight()[0].packet_id, 5);
  EXPECT_EQ(q.inflight()[2].state, State::kWaitPubcomp);
  // The handshakes go on where they were.
  EXPECT_TRUE(q.on_puback(5));
  EXPECT_TRUE(q.on_pubrec(11));
  // New ids continue after the last one used there, skipping ids in use (11, 12).
  EXPECT_EQ(q.start(msg("t", "d", mqtt::QoS::k1, 0, State::kQueued)).packet_id, 13);
  EXPECT_EQ(q.last_packet_id(), 13);
  EXPECT_TRUE(q.on_pubcomp(11));
  EXPECT_TRUE(q.on_pubcomp(12));
}

}  // namespace
}  // namespace tcpms::broker
