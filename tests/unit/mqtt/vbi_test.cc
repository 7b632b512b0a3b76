// Variable Byte Integer: 3.1.1 §2.2.3 Table 2.4, 5.0 §1.5.5 Table 1-1.
#include <gtest/gtest.h>

#include "mqtt_test_util.h"

namespace tcpms::mqtt::test {
namespace {

struct Case {
  std::uint32_t value;
  Buf wire;
};

// The boundaries of each encoded length, as in the spec table.
const std::vector<Case>& spec_cases() {
  static const std::vector<Case> cases = {
      {0, B({0x00})},
      {127, B({0x7F})},
      {128, B({0x80, 0x01})},
      {16'383, B({0xFF, 0x7F})},
      {16'384, B({0x80, 0x80, 0x01})},
      {2'097'151, B({0xFF, 0xFF, 0x7F})},
      {2'097'152, B({0x80, 0x80, 0x80, 0x01})},
      {268'435'455, B({0xFF, 0xFF, 0xFF, 0x7F})},
  };
  return cases;
}

TEST(VarInt, DecodesSpecTable) {
  for (const Case& c : spec_cases()) {
    const VarIntResult r = decode_varint(view(c.wire));
    ASSERT_EQ(r.status, VarIntStatus::kOk) << c.value;
    EXPECT_EQ(r.value, c.value);
    EXPECT_EQ(r.size, c.wire.size());
  }
}

TEST(VarInt, EncodesSpecTable) {
  for (const Case& c : spec_cases()) {
    std::byte out[4];
    const std::size_t n = encode_varint(c.value, out);
    EXPECT_EQ(Buf(out, out + n), c.wire) << c.value;
    EXPECT_EQ(varint_size(c.value), c.wire.size());
  }
}

TEST(VarInt, IgnoresBytesAfterTheInteger) {
  const VarIntResult r = decode_varint(view(B({0x80, 0x01, 0xFF, 0xFF})));
  ASSERT_EQ(r.status, VarIntStatus::kOk);
  EXPECT_EQ(r.value, 128u);
  EXPECT_EQ(r.size, 2);
}

TEST(VarInt, NeedsMoreWhileContinuationBitIsSet) {
  EXPECT_EQ(decode_varint({}).status, VarIntStatus::kNeedMore);
  EXPECT_EQ(decode_varint(view(B({0x80}))).status, VarIntStatus::kNeedMore);
  EXPECT_EQ(decode_varint(view(B({0xFF, 0xFF, 0xFF}))).status, VarIntStatus::kNeedMore);
}

TEST(VarInt, FifthByteIsMalformed) {
  // At most four bytes (3.1.1 §2.2.3); a continuation bit on the fourth is an error even before
  // the fifth byte arrives.
  EXPECT_EQ(decode_varint(view(B({0xFF, 0xFF, 0xFF, 0xFF}))).status, VarIntStatus::kMalformed);
  EXPECT_EQ(decode_varint(view(B({0x80, 0x80, 0x80, 0x80, 0x01}))).status, VarIntStatus::kMalformed);
}

TEST(VarInt, NonMinimalEncodingIsMalformed) {
  // [MQTT-1.5.5-1]: the minimum number of bytes.
  EXPECT_EQ(decode_varint(view(B({0x80, 0x00}))).status, VarIntStatus::kMalformed);
  EXPECT_EQ(decode_varint(view(B({0xFF, 0x80, 0x00}))).status, VarIntStatus::kMalformed);
  EXPECT_EQ(decode_varint(view(B({0x81, 0x80, 0x80, 0x00}))).status, VarIntStatus::kMalformed);
}

TEST(VarInt, EncodeRejectsTooLargeOrTooSmallBuffer) {
  std::byte out[4];
  EXPECT_EQ(encode_varint(kMaxVarInt + 1, out), 0u);
  EXPECT_EQ(varint_size(kMaxVarInt + 1), 0u);
  EXPECT_EQ(encode_varint(16'384, std::span<std::byte>(out, 2)), 0u);
}

}  // namespace
}  // namespace tcpms::mqtt::test
