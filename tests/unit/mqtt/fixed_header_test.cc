// Fixed header and framing: 3.1.1 §2.2 (Table 2.2 flags), 5.0 §2.1.
#include <gtest/gtest.h>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {

FixedHeaderResult hdr(const Buf& b, std::uint32_t max = 0) { return decode_fixed_header(view(b), max); }

TEST(FixedHeader, DecodesTypeFlagsAndLength) {
  const auto r = hdr(B({0x32, 0x80, 0x01}));  // PUBLISH QoS 1, Remaining Length 128
  ASSERT_EQ(r.status, FrameStatus::kComplete);
  EXPECT_EQ(r.header.type, PacketType::kPublish);
  EXPECT_EQ(r.header.flags, 0x02);
  EXPECT_EQ(r.header.remaining_length, 128u);
  EXPECT_EQ(r.header.header_size, 3);
  EXPECT_EQ(r.header.packet_size(), 131u);
}

TEST(FixedHeader, NeedsMoreOnEveryPrefix) {
  EXPECT_EQ(hdr({}).status, FrameStatus::kNeedMore);
  EXPECT_EQ(hdr(B({0x30})).status, FrameStatus::kNeedMore);
  EXPECT_EQ(hdr(B({0x30, 0xFF})).status, FrameStatus::kNeedMore);
  EXPECT_EQ(hdr(B({0x30, 0xFF, 0xFF, 0xFF})).status, FrameStatus::kNeedMore);
}

TEST(FixedHeader, PacketTypeZeroIsMalformed) {
  const auto r = hdr(B({0x00, 0x00}));
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.error.code, ReasonCode::kMalformedPacket);
}

TEST(FixedHeader, ReservedFlagsMustMatchTable) {
  // [MQTT-2.2.2-1], [MQTT-2.2.2-2]: every non-PUBLISH type has one legal flag value.
  for (int type = 1; type <= 15; ++type) {
    if (type == 3) continue;
    const int legal = (type == 6 || type == 8 || type == 10) ? 0x2 : 0x0;
    for (int flags = 0; flags < 16; ++flags) {
      const auto r = hdr(B({(type << 4) | flags, 0x00}));
      if (flags == legal) {
        EXPECT_EQ(r.status, FrameStatus::kComplete) << type << "/" << flags;
      } else {
        ASSERT_EQ(r.status, FrameStatus::kError) << type << "/" << flags;
        EXPECT_EQ(r.error.code, ReasonCode::kMalformedPacket);
      }
    }
  }
}

TEST(FixedHeader, PubrelSubscribeUnsubscribeNeed0010) {
  // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
  EXPECT_EQ(hdr(B({0x60, 0x02, 0, 1})).status, FrameStatus::kError);
  EXPECT_EQ(hdr(B({0x80, 0x02, 0, 1})).status, FrameStatus::kError);
  EXPECT_EQ(hdr(B({0xA0, 0x02, 0, 1})).status, FrameStatus::kError);
  EXPECT_EQ(hdr(B({0x62, 0x02, 0, 1})).status, FrameStatus::kComplete);
}

TEST(FixedHeader, PublishQos3IsMalformed) {
  // [MQTT-3.3.1-4]
  for (int f : {0x6, 0x7, 0xE, 0xF}) {
    const auto r = hdr(B({0x30 | f, 0x00}));
    ASSERT_EQ(r.status, FrameStatus::kError) << f;
    EXPECT_EQ(r.error.code, ReasonCode::kMalformedPacket);
  }
}

TEST(FixedHeader, PublishDupOnQos0IsMalformed) {
  // [MQTT-3.3.1-2]
  EXPECT_EQ(hdr(B({0x38, 0x00})).status, FrameStatus::kError);
  EXPECT_EQ(hdr(B({0x39, 0x00})).status, FrameStatus::kError);
  EXPECT_EQ(hdr(B({0x3A, 0x00})).status, FrameStatus::kComplete);  // DUP + QoS 1 is fine
  EXPECT_EQ(hdr(B({0x31, 0x00})).status, FrameStatus::kComplete);  // RETAIN on QoS 0 is fine
}

TEST(FixedHeader, RemainingLengthOverFourBytesIsMalformed) {
  const auto r = hdr(B({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}));
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.error.code, ReasonCode::kMalformedPacket);
}

TEST(FixedHeader, NonMinimalRemainingLengthIsMalformed) {
  EXPECT_EQ(hdr(B({0xC0, 0x80, 0x00})).status, FrameStatus::kError);  // [MQTT-1.5.5-1]
}

TEST(FixedHeader, PingWithBodyIsMalformed) {
  EXPECT_EQ(hdr(B({0xC0, 0x01, 0x00})).status, FrameStatus::kError);
  EXPECT_EQ(hdr(B({0xD0, 0x01, 0x00})).status, FrameStatus::kError);
}

TEST(FixedHeader, TooLargeIsReportedBeforeTheBodyArrives) {
  // 5.0 §3.1.2.11.4: a declared 256 MiB packet is refused from its 5 header bytes alone.
  const auto r = hdr(B({0x30, 0xFF, 0xFF, 0xFF, 0x7F}), 1024);
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.error.code, ReasonCode::kPacketTooLarge);
  // The limit counts the whole packet: header + Remaining Length.
  EXPECT_EQ(hdr(B({0x30, 0x7E}), 128).status, FrameStatus::kComplete);  // 2 + 126
  EXPECT_EQ(hdr(B({0x30, 0x7F}), 128).status, FrameStatus::kError);     // 2 + 127
}

TEST(NextFrame, WaitsForTheWholeBodyThenYieldsIt) {
  const Buf wire = B({0xC0, 0x00, 0x30, 0x03, 0x00, 0x01, 'a', 0xD0});
  FrameResult f = next_frame(view(wire), 0);
  ASSERT_EQ(f.status, FrameStatus::kComplete);
  EXPECT_EQ(f.header.type, PacketType::kPingreq);
  EXPECT_TRUE(f.body.empty());
  f = next_frame(view(wire).subspan(2), 0);
  ASSERT_EQ(f.status, FrameStatus::kComplete);
  EXPECT_EQ(f.body.size(), 3u);
  EXPECT_EQ(f.body.data(), wire.data() + 4);  // a view, not a copy
  EXPECT_EQ(next_frame(view(wire).subspan(2, 4), 0).status, FrameStatus::kNeedMore);
  EXPECT_EQ(next_frame(view(wire).subspan(7), 0).status, FrameStatus::kNeedMore);
}

}  // namespace
}  // namespace tcpms::mqtt::test
