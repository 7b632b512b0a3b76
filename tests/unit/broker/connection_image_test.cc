// decode_connection_image(encode_connection_image(x)) == x for everything an MQTT connection
// carries to the process replacing this one (upgrade handover), and clean errors (never a
// crash) for truncated, forged or inconsistent input.
#include "broker/connection_image.h"

#include <gtest/gtest.h>

namespace tcpms::broker {
namespace {

constexpr uint64_t kNow = 5'000'000;

OutMessage inflight_qos1(std::string_view topic, std::string_view payload, uint16_t id) {
  OutMessage m;
  m.topic = SharedBytes::copy_of(as_bytes(topic));
  m.payload = SharedBytes::copy_of(as_bytes(payload));
  m.qos = mqtt::QoS::k1;
  m.packet_id = id;
  m.state = OutMessage::State::kWaitPuback;
  return m;
}

ConnectionImage v5_sample() {
  ConnectionImage img;
  img.connected = true;
  img.client_id = "client-5";
  img.clean = false;
  img.connected_since_s = 1'700'000'000;
  img.max_packet_size = 4096;
  img.receive_maximum = 10;
  img.username = "alice";
  // Will Delay and Message Expiry, with a forwarded property (Content Type "text").
  img.will = WillImage{mqtt::QoS::k1, true, "wills/c5", "gone", std::string("\x03\x00\x04text", 7),
                       60, 30};
  img.topic_aliases = {"", "", "sensors/1", ""};
  img.session.version = mqtt::ProtocolVersion::kV5;
  img.session.session_expiry_s = 3600;
  img.session.last_packet_id = 41;
  img.session.subscriptions = {{"t/#", mqtt::QoS::k1, 0, 7}, {"u/+", mqtt::QoS::k2, 1, 0}};
  img.session.inflight.push_back(inflight_qos1("t/a", "one", 41));
  img.session.incoming = {9};
  return img;
}

std::string encoded(const ConnectionImage& img) {
  std::string out;
  encode_connection_image(img, out, kNow);
  return out;
}

void expect_same(const ConnectionImage& a, const ConnectionImage& b) {
  EXPECT_EQ(a.connected, b.connected);
  EXPECT_EQ(a.client_id, b.client_id);
  EXPECT_EQ(a.clean, b.clean);
  EXPECT_EQ(a.connected_since_s, b.connected_since_s);
  EXPECT_EQ(a.max_packet_size, b.max_packet_size);
  EXPECT_EQ(a.receive_maximum, b.receive_maximum);
  EXPECT_EQ(a.username, b.username);
  EXPECT_EQ(a.will, b.will);
  EXPECT_EQ(a.topic_aliases, b.topic_aliases);
  EXPECT_EQ(a.session.version, b.session.version);
  EXPECT_EQ(a.session.session_expiry_s, b.session.session_expiry_s);
  EXPECT_EQ(a.session.last_packet_id, b.session.last_packet_id);
  EXPECT_EQ(a.session.subscriptions, b.session.subscriptions);
  ASSERT_EQ(a.session.inflight.size(), b.session.inflight.size());
  for (size_t i = 0; i < a.session.inflight.size(); ++i) {
    EXPECT_EQ(as_chars(a.session.inflight[i].topic.view()), as_chars(b.session.inflight[i].topic.view()));
    EXPECT_EQ(as_chars(a.session.inflight[i].payload.view()), as_chars(b.session.inflight[i].payload.view()));
    EXPECT_EQ(a.session.inflight[i].packet_id, b.session.inflight[i].packet_id);
    EXPECT_EQ(a.session.inflight[i].state, b.session.inflight[i].state);
  }
  EXPECT_EQ(a.session.incoming, b.session.incoming);
}

TEST(ConnectionImage, A50ConnectionRoundTrips) {
  const ConnectionImage img = v5_sample();
  const std::string bytes = encoded(img);
  ConnectionImageResult r = decode_connection_image(as_bytes(bytes), kNow);
  ASSERT_TRUE(r.ok()) << r.error;
  expect_same(img, r.image);
  EXPECT_EQ(encoded(r.image), bytes);  // canonical
}

TEST(ConnectionImage, A311ConnectionWithoutExtrasRoundTrips) {
  ConnectionImage img;
  img.connected = true;
  img.client_id = "c311";
  img.will = WillImage{mqtt::QoS::k0, false, "w", "", "", 0, 0};
  img.session.version = mqtt::ProtocolVersion::kV311;
  img.session.subscriptions = {{"a/b", mqtt::QoS::k1, 0, 0}};
  img.session.inflight.push_back(inflight_qos1("a/b", "x", 1));
  ConnectionImageResult r = decode_connection_image(as_bytes(encoded(img)), kNow);
  ASSERT_TRUE(r.ok()) << r.error;
  expect_same(img, r.image);
}

TEST(ConnectionImage, AConnectionBeforeItsConnectIsFiveBytes) {
  const std::string bytes = encoded(ConnectionImage{});
  EXPECT_EQ(bytes.size(), 5u);
  ConnectionImageResult r = decode_connection_image(as_bytes(bytes), kNow);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.image.connected);
}

TEST(ConnectionImage, EveryTruncationIsRefusedCleanly) {
  const std::string bytes = encoded(v5_sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    ConnectionImageResult r = decode_connection_image(as_bytes(std::string_view(bytes).substr(0, n)), kNow);
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    EXPECT_NE(r.error, nullptr);
  }
  EXPECT_FALSE(decode_connection_image(as_bytes(bytes + "x"), kNow).ok());
}

TEST(ConnectionImage, ForgedFieldsAreRefused) {
  std::string wrong_version = encoded(v5_sample());
  wrong_version[3] = 2;
  EXPECT_STREQ(decode_connection_image(as_bytes(wrong_version), kNow).error,
               "unknown connection image version");

  ConnectionImage bad_will = v5_sample();
  bad_will.will->topic = "a/+";  // a filter, not a topic name
  EXPECT_STREQ(decode_connection_image(as_bytes(encoded(bad_will)), kNow).error, "invalid will topic");

  ConnectionImage too_many = v5_sample();
  too_many.topic_aliases.assign(16, "x");
  std::string bytes = encoded(too_many);
  EXPECT_TRUE(decode_connection_image(as_bytes(bytes), kNow).ok());

  ConnectionImage v3_with_aliases = v5_sample();
  v3_with_aliases.session.version = mqtt::ProtocolVersion::kV311;
  v3_with_aliases.session.session_expiry_s = 0;
  v3_with_aliases.will.reset();
  v3_with_aliases.max_packet_size = 0;
  EXPECT_STREQ(decode_connection_image(as_bytes(encoded(v3_with_aliases)), kNow).error,
               "5.0 state in a 3.x connection image");

  ConnectionImage no_id = v5_sample();
  no_id.client_id.clear();
  EXPECT_STREQ(decode_connection_image(as_bytes(encoded(no_id)), kNow).error, "empty client id");
}

TEST(UpgradeItems, ARetainedMessageRoundTrips) {
  RetainedImage img{"r/1", "kept", std::string("\x03\x00\x04text", 7), mqtt::QoS::k1, 1500};
  std::string bytes;
  encode_retained_item(img, bytes);
  EXPECT_EQ(bytes[0], kRetainedItem);
  RetainedItemResult r = decode_retained_item(as_bytes(bytes));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.image.topic, "r/1");
  EXPECT_EQ(r.image.payload, "kept");
  EXPECT_EQ(r.image.props, img.props);
  EXPECT_EQ(r.image.qos, mqtt::QoS::k1);
  EXPECT_EQ(r.image.expiry_left_ms, 1500u);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_retained_item(as_bytes(std::string_view(bytes).substr(0, n))).ok()) << n;
  img.topic = "r/#";
  bytes.clear();
  encode_retained_item(img, bytes);
  EXPECT_STREQ(decode_retained_item(as_bytes(bytes)).error, "invalid retained topic");
}

TEST(UpgradeItems, AnOfflineSessionWithItsTimersAndDelayedWillRoundTrips) {
  OfflineSessionImage img;
  img.client_id = "away";
  img.expires_in_ms = 600'000;
  img.delayed_will = WillImage{mqtt::QoS::k1, true, "wills/away", "gone", "", 0, 3};
  img.will_in_ms = 2500;
  img.session = v5_sample().session;
  std::string bytes;
  encode_offline_item(img, bytes, kNow);
  EXPECT_EQ(bytes[0], kOfflineSessionItem);
  OfflineItemResult r = decode_offline_item(as_bytes(bytes), kNow);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.image.client_id, "away");
  EXPECT_EQ(r.image.expires_in_ms, 600'000u);
  EXPECT_EQ(r.image.delayed_will, img.delayed_will);
  EXPECT_EQ(r.image.will_in_ms, 2500u);
  EXPECT_EQ(r.image.session.subscriptions, img.session.subscriptions);
  EXPECT_EQ(r.image.session.inflight.size(), 1u);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_offline_item(as_bytes(std::string_view(bytes).substr(0, n)), kNow).ok()) << n;
  img.session.version = mqtt::ProtocolVersion::kV311;
  img.session.session_expiry_s = 0;
  bytes.clear();
  encode_offline_item(img, bytes, kNow);
  EXPECT_STREQ(decode_offline_item(as_bytes(bytes), kNow).error, "5.0 state in a 3.x offline session");
}

}  // namespace
}  // namespace tcpms::broker
