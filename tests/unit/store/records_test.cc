// The record codecs (src/store/*_record.h, wire.h): round trips, the envelope's checks, and
// refusals of what a live session cannot have.
#include <gtest/gtest.h>

#include "store/message_record.h"
#include "store/retained_record.h"
#include "store/session_record.h"
#include "store/subscription_record.h"
#include "store/will_record.h"

namespace tcpms::store {
namespace {

SharedBytes sb(std::string_view s) { return SharedBytes::copy_of(as_bytes(s)); }
std::string str(const SharedBytes& b) { return std::string(as_chars(b.view())); }
ByteView bv(const std::string& s) { return as_bytes(s); }

TEST(WireTest, EnvelopeChecksVersionChecksumAndLength) {
  std::string r;
  encode_session_record(SessionRecord{mqtt::ProtocolVersion::kV5, 60, 1234, 7}, r);
  EXPECT_TRUE(decode_session_record(bv(r)).ok());
  std::string flipped = r;
  flipped[3] ^= 0x01;
  EXPECT_STREQ(decode_session_record(bv(flipped)).error, "record checksum mismatch");
  EXPECT_STREQ(decode_session_record(bv(r.substr(0, 4))).error, "record shorter than its envelope");
  EXPECT_STREQ(decode_session_record(bv(r.substr(0, r.size() - 1))).error, "record checksum mismatch");
  // A version we do not know, with a valid checksum.
  std::string v2 = r.substr(0, r.size() - 4);
  v2[0] = 2;
  seal_record(v2, 0);
  EXPECT_STREQ(decode_session_record(bv(v2)).error, "unknown record format version");
  EXPECT_FALSE(decode_session_record({}).ok());
}

TEST(WireTest, ReaderCountRefusesMoreEntriesThanBytes) {
  std::string b;
  Writer(b).u32(1000);
  Reader in(bv(b));
  EXPECT_EQ(in.count(1), 0u);
  EXPECT_FALSE(in.ok());
}

TEST(SessionRecordTest, RoundTripAndRefusals) {
  const SessionRecord s{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 65535};
  std::string r;
  encode_session_record(s, r);
  auto d = decode_session_record(bv(r));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.value, s);

  std::string bad;
  encode_session_record(SessionRecord{static_cast<mqtt::ProtocolVersion>(6), 10, 0, 0}, bad);
  EXPECT_STREQ(decode_session_record(bv(bad)).error, "session record protocol level is not 3, 4 or 5");
  bad.clear();
  encode_session_record(SessionRecord{mqtt::ProtocolVersion::kV5, 0, 0, 0}, bad);
  EXPECT_FALSE(decode_session_record(bv(bad)).ok());
}

TEST(SessionRecordTest, ExpiryCountsFromGoingOfflineOrFromRecovery) {
  SessionRecord s{mqtt::ProtocolVersion::kV5, 10, 1'000'000, 0};
  EXPECT_FALSE(session_expired(s, 1'009'999, 2'000'000));
  EXPECT_TRUE(session_expired(s, 1'010'000, 2'000'000));
  s.offline_since_ms = 0;  // it had a connection when the server stopped
  EXPECT_FALSE(session_expired(s, 2'005'000, 2'000'000));
  EXPECT_TRUE(session_expired(s, 2'010'000, 2'000'000));
  s.expiry_s = kNeverExpires;
  EXPECT_FALSE(session_expired(s, UINT64_MAX / 2, 0));
}

TEST(SubscriptionRecordTest, RoundTripAndRefusals) {
  const SubscriptionRecord s{mqtt::QoS::k2, kSubscriptionNoLocal | kSubscriptionRetainAsPublished,
                             kMaxSubscriptionId};
  std::string r;
  encode_subscription_record(s, r);
  auto d = decode_subscription_record(bv(r));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.value, s);
  for (SubscriptionRecord bad : {SubscriptionRecord{static_cast<mqtt::QoS>(3), 0, 0},
                                 SubscriptionRecord{mqtt::QoS::k1, 4, 0},
                                 SubscriptionRecord{mqtt::QoS::k1, 0, kMaxSubscriptionId + 1}}) {
    std::string b;
    encode_subscription_record(bad, b);
    EXPECT_FALSE(decode_subscription_record(bv(b)).ok());
  }
  EXPECT_TRUE(valid_stored_filter("a/+/#"));
  EXPECT_FALSE(valid_stored_filter(""));
  EXPECT_FALSE(valid_stored_filter("a/#/b"));
  EXPECT_TRUE(valid_stored_filter("$share/g/a"));
  EXPECT_FALSE(valid_stored_filter("$share/g"));
  EXPECT_FALSE(valid_stored_filter("$share/g+/a"));
  EXPECT_TRUE(valid_stored_subscription("$share/g/a", {mqtt::QoS::k1, kSubscriptionRetainAsPublished, 7}));
  EXPECT_FALSE(valid_stored_subscription("$share/g/a", {mqtt::QoS::k1, kSubscriptionNoLocal, 0}));
  EXPECT_TRUE(valid_stored_subscription("a/b", {mqtt::QoS::k1, kSubscriptionNoLocal, 0}));
}

TEST(MessageRecordTest, BodyRoundTrip) {
  // Payload Format Indicator 1, then a User Property ("k", "v").
  const std::string props("\x01\x01\x26\x00\x01k\x00\x01v", 9);
  MessageBody b{sb("a/b"), sb(std::string("pay\0load", 8)), sb(props), 1700000000123};
  std::string r;
  encode_message_body(b, r);
  auto d = decode_message_body(bv(r));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(str(d.value.topic), "a/b");
  EXPECT_EQ(str(d.value.payload), std::string("pay\0load", 8));
  EXPECT_EQ(str(d.value.properties), props);
  EXPECT_EQ(d.value.expires_at_ms, 1700000000123u);
}

TEST(MessageRecordTest, BodyRefusesBadTopicOrProperties) {
  for (auto [topic, props] : {std::pair<std::string, std::string>{"a/+", ""}, {"", ""},
                              {"a", std::string("\x7f\x00", 2)}}) {
    std::string r;
    encode_message_body(MessageBody{sb(topic), sb("x"), sb(props), 0}, r);
    EXPECT_FALSE(decode_message_body(bv(r)).ok()) << topic;
  }
}

TEST(MessageRecordTest, RefRoundTripInEveryState) {
  const std::string ids("\x0b\x05", 2);  // Subscription Identifier 5
  for (auto [qos, state, pid, body] :
       {std::tuple{mqtt::QoS::k1, DeliveryState::kQueued, 0, 9ull},
        std::tuple{mqtt::QoS::k1, DeliveryState::kWaitPuback, 7, 9ull},
        std::tuple{mqtt::QoS::k2, DeliveryState::kWaitPubrec, 65535, 9ull},
        std::tuple{mqtt::QoS::k2, DeliveryState::kWaitPubcomp, 1, 0ull}}) {
    MessageRef ref{body, qos, true, state, static_cast<uint16_t>(pid), sb(ids)};
    std::string r;
    encode_message_ref(ref, r);
    auto d = decode_message_ref(bv(r));
    ASSERT_TRUE(d.ok()) << d.error;
    EXPECT_EQ(d.value.body_id, body);
    EXPECT_EQ(d.value.qos, qos);
    EXPECT_EQ(d.value.state, state);
    EXPECT_EQ(d.value.packet_id, pid);
    EXPECT_TRUE(d.value.retain);
    EXPECT_EQ(str(d.value.subscription_ids), ids);
  }
}

TEST(MessageRefTest, RefusesInconsistentStates) {
  const MessageRef bad[] = {
      {9, mqtt::QoS::k0, false, DeliveryState::kQueued, 0, {}},       // QoS 0 is never kept
      {9, mqtt::QoS::k1, false, DeliveryState::kQueued, 3, {}},       // queued with an id
      {9, mqtt::QoS::k2, false, DeliveryState::kWaitPuback, 3, {}},   // state vs QoS
      {9, mqtt::QoS::k1, false, DeliveryState::kWaitPuback, 0, {}},   // in flight, no id
      {0, mqtt::QoS::k1, false, DeliveryState::kWaitPuback, 3, {}},   // no body
      {9, mqtt::QoS::k2, false, DeliveryState::kWaitPubcomp, 3, {}},  // released, names a body
      {9, mqtt::QoS::k1, false, static_cast<DeliveryState>(4), 3, {}},
  };
  for (const MessageRef& ref : bad) {
    std::string r;
    encode_message_ref(ref, r);
    EXPECT_FALSE(decode_message_ref(bv(r)).ok());
  }
}

TEST(RetainedRecordTest, RoundTripAndRefusals) {
  std::string r;
  encode_retained_record(RetainedRecord{mqtt::QoS::k1, sb("on"), {}, 42}, r);
  auto d = decode_retained_record(bv(r));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.value.qos, mqtt::QoS::k1);
  EXPECT_EQ(str(d.value.payload), "on");
  EXPECT_EQ(d.value.expires_at_ms, 42u);
  r.clear();
  encode_retained_record(RetainedRecord{mqtt::QoS::k1, {}, {}, 0}, r);
  EXPECT_STREQ(decode_retained_record(bv(r)).error, "retained record without a payload");
}

TEST(WillRecordTest, RoundTripAndRefusals) {
  WillRecord w{sb("dev/1/status"), sb("gone"), mqtt::QoS::k2, true, {}, 30, 10, 99};
  std::string r;
  encode_will_record(w, r);
  auto d = decode_will_record(bv(r));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(str(d.value.topic), "dev/1/status");
  EXPECT_EQ(str(d.value.payload), "gone");
  EXPECT_EQ(d.value.qos, mqtt::QoS::k2);
  EXPECT_TRUE(d.value.retain);
  EXPECT_EQ(d.value.expiry_s, 30u);
  EXPECT_EQ(d.value.delay_s, 10u);
  EXPECT_EQ(d.value.due_ms, 99u);
  w.topic = sb("dev/#");
  r.clear();
  encode_will_record(w, r);
  EXPECT_STREQ(decode_will_record(bv(r)).error, "invalid will topic");
}

}  // namespace
}  // namespace tcpms::store
