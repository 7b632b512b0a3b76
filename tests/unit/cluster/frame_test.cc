// Frames between nodes: the byte layout of docs/cluster.md, and refusal of anything else.
#include "cluster/frame.h"

#include <gtest/gtest.h>

namespace tcpms::cluster {
namespace {

TEST(Frame, PublishLayout) {
  std::string f = encode_message(FrameKind::kPublish, "n1", "", "a/b", "hi", mqtt::QoS::k1, true);
  const std::string want("\x01\x01\x05\x02\x00n1\x00\x00\x03\x00" "a/bhi", 16);
  EXPECT_EQ(f, want);
  auto d = decode_frame(f);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, FrameKind::kPublish);
  EXPECT_EQ(d->qos, mqtt::QoS::k1);
  EXPECT_TRUE(d->retain);
  EXPECT_EQ(d->node, "n1");
  EXPECT_EQ(d->arg, "");
  EXPECT_EQ(d->topic, "a/b");
  EXPECT_EQ(d->payload, "hi");
}

TEST(Frame, RoundTripsEveryKindWithBinaryPayload) {
  std::string payload("\0\xff\x01zero", 7);
  for (auto kind : {FrameKind::kPush, FrameKind::kRouteAdd, FrameKind::kRouteRemove, FrameKind::kHello,
                    FrameKind::kBye, FrameKind::kConnected, FrameKind::kSessionRequest, FrameKind::kSession,
                    FrameKind::kNoSession}) {
    const std::string bytes = encode_message(kind, "node-b", "client/#", "t", payload, mqtt::QoS::k2, false);
    auto d = decode_frame(bytes);  // views into `bytes`
    ASSERT_TRUE(d);
    EXPECT_EQ(d->kind, kind);
    EXPECT_EQ(d->qos, mqtt::QoS::k2);
    EXPECT_FALSE(d->retain);
    EXPECT_EQ(d->arg, "client/#");
    EXPECT_EQ(d->payload, payload);
  }
}

TEST(Frame, Events) {
  const std::string bytes = encode_event(FrameKind::kRouteAdd, "n2", "a/+");
  auto d = decode_frame(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, FrameKind::kRouteAdd);
  EXPECT_EQ(d->node, "n2");
  EXPECT_EQ(d->arg, "a/+");
  EXPECT_TRUE(d->topic.empty());
}

TEST(Frame, LongFieldsUseBothLengthBytes) {
  std::string topic(300, 't');
  const std::string bytes = encode_message(FrameKind::kPublish, "n", "", topic, "", mqtt::QoS::k0, false);
  auto d = decode_frame(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->topic, topic);
  EXPECT_TRUE(d->payload.empty());
}

// A session image rides as the payload: no 64 KiB field limit (images carry queued messages).
TEST(Frame, SessionImageLargerThanAFieldLength) {
  std::string image(3 << 20, '\0');
  for (size_t i = 0; i < image.size(); i += 4093) image[i] = static_cast<char>(i);
  const std::string bytes =
      encode_message(FrameKind::kSession, "node-a", "device-7", "18446744073709551615", image, mqtt::QoS::k0, false);
  auto d = decode_frame(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, FrameKind::kSession);
  EXPECT_EQ(d->node, "node-a");
  EXPECT_EQ(d->arg, "device-7");
  EXPECT_EQ(d->topic, "18446744073709551615");  // the request id
  EXPECT_EQ(d->payload.size(), image.size());
  EXPECT_TRUE(d->payload == image);
}

TEST(Frame, RefusesTruncatedOrForeign) {
  std::string f = encode_message(FrameKind::kPublish, "n1", "", "a/b", "", mqtt::QoS::k0, false);
  for (size_t n = 0; n < f.size(); ++n) EXPECT_FALSE(decode_frame(f.substr(0, n))) << n;
  std::string other = f;
  other[0] = 2;  // another version
  EXPECT_FALSE(decode_frame(other));
  std::string qos3 = f;
  qos3[2] = 3;
  EXPECT_FALSE(decode_frame(qos3));
}

}  // namespace
}  // namespace tcpms::cluster
