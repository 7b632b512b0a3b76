// The MQTT workloads' payload format, sequence checks and naming (src/apps/bench/mqtt_payload.h).
#include "mqtt_payload.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "message.h"

namespace tcpms::benchapp {
namespace {

TEST(MqttPayload, RoundTripsPublisherSequenceAndStamp) {
  std::vector<std::byte> m(64);
  write_bench_payload(m, {7, 42, 123'456'789'012ull});
  auto p = read_bench_payload(m);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->publisher, 7u);
  EXPECT_EQ(p->seq, 42u);
  EXPECT_EQ(p->stamp, 123'456'789'012ull);
  EXPECT_FALSE(p->is_end());
}

TEST(MqttPayload, EveryByteIsChecked) {
  std::vector<std::byte> m(100);
  write_bench_payload(m, {3, 9, 555});
  for (size_t i = 0; i < m.size(); ++i) {
    auto bad = m;
    bad[i] ^= std::byte{0x10};
    auto p = read_bench_payload(bad);
    if (i >= kMessageHeaderBytes) {
      EXPECT_FALSE(p) << "pattern byte " << i;
    } else if (p) {
      // A header byte may name another message whose pattern happens to match (the pattern
      // is one byte wide); it never reads back as the original one.
      EXPECT_TRUE(p->publisher != 3 || p->seq != 9 || p->stamp != 555) << "header byte " << i;
    }
  }
}

TEST(MqttPayload, HeaderOnlyAndShortPayloads) {
  std::vector<std::byte> m(kMessageHeaderBytes);
  write_bench_payload(m, {1, 2, 3});
  ASSERT_TRUE(read_bench_payload(m));
  EXPECT_FALSE(read_bench_payload(ByteView(m).first(kMessageHeaderBytes - 1)));
  EXPECT_FALSE(read_bench_payload(ByteView()));
}

TEST(MqttPayload, EndMarkerCarriesTheCount) {
  std::vector<std::byte> m(32);
  write_bench_payload(m, {5, kEndSeq, 1000});
  auto p = read_bench_payload(m);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->is_end());
  EXPECT_EQ(p->stamp, 1000u);
}

TEST(MqttPayload, SequenceInOrderGapAndDuplicate) {
  uint32_t next = 0, gap = 99;
  EXPECT_EQ(check_sequence(next, 0, gap), SeqVerdict::kInOrder);
  EXPECT_EQ(gap, 0u);
  EXPECT_EQ(check_sequence(next, 1, gap), SeqVerdict::kInOrder);
  EXPECT_EQ(next, 2u);
  EXPECT_EQ(check_sequence(next, 5, gap), SeqVerdict::kAfterGap);  // 2, 3, 4 lost
  EXPECT_EQ(gap, 3u);
  EXPECT_EQ(next, 6u);
  EXPECT_EQ(check_sequence(next, 3, gap), SeqVerdict::kDuplicate);  // late or repeated
  EXPECT_EQ(next, 6u);
  EXPECT_EQ(check_sequence(next, 5, gap), SeqVerdict::kDuplicate);
  EXPECT_EQ(check_sequence(next, 6, gap), SeqVerdict::kInOrder);
}

TEST(MqttPayload, ClientIdsAreShortAndUnique) {
  std::set<std::string> ids;
  for (uint64_t i = 0; i < 1000; ++i) ids.insert(client_id(0x3FFFFF, "-", i));
  ids.insert(client_id(0x3FFFFF, "c", 0));
  EXPECT_EQ(ids.size(), 1001u);
  EXPECT_EQ(client_id(0x1a2b, "-", 17), "tb1a2b-17");
  EXPECT_LE(client_id(0x3FFFFF, "-", 9'999'999).size(), 23u);  // MQTT 3.1's limit
}

TEST(MqttPayload, P2pPairsArePermutations) {
  for (uint64_t n : {2u, 3u, 10u, 1001u}) {
    std::set<uint64_t> targets;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t t = p2p_target(i, n);
      EXPECT_NE(t, i) << n;
      EXPECT_EQ(p2p_source(t, n), i) << n;
      targets.insert(t);
    }
    EXPECT_EQ(targets.size(), n);
  }
}

}  // namespace
}  // namespace tcpms::benchapp
