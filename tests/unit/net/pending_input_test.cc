// PendingInput: a partial frame's tail, owned only while it exists.
#include "net/pending_input.h"

#include <gtest/gtest.h>

#include <string>

namespace tcpms::net {
namespace {

TEST(PendingInput, CreatedOnFirstAppendAndFreedWhenConsumed) {
  PendingInput* p = nullptr;
  ASSERT_TRUE(pending_append(p, as_bytes("abc"), 1024));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(as_chars(p->view()), "abc");
  EXPECT_GE(p->capacity, 3u);
  EXPECT_LE(p->capacity, 64u) << "a small tail stays small";
  ASSERT_TRUE(pending_append(p, as_bytes("defg"), 1024));
  EXPECT_EQ(as_chars(p->view()), "abcdefg");
  pending_consume(p, 2);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(as_chars(p->view()), "cdefg");
  pending_consume(p, 5);
  EXPECT_EQ(p, nullptr) << "an emptied buffer is freed at once";
  pending_consume(p, 1);  // no-op on null
  EXPECT_EQ(p, nullptr);
}

TEST(PendingInput, GrowsAndKeepsBytes) {
  PendingInput* p = nullptr;
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    std::string part(37, static_cast<char>('A' + i % 26));
    ASSERT_TRUE(pending_append(p, as_bytes(part), 1 << 20));
    expected += part;
  }
  EXPECT_EQ(as_chars(p->view()), expected);
  EXPECT_GE(p->capacity, expected.size());
  pending_free(p);
  EXPECT_EQ(p, nullptr);
}

TEST(PendingInput, RefusesToPassTheLimitAndLeavesBufferUnchanged) {
  PendingInput* p = nullptr;
  EXPECT_FALSE(pending_append(p, as_bytes(std::string(11, 'x')), 10));
  EXPECT_EQ(p, nullptr);
  ASSERT_TRUE(pending_append(p, as_bytes(std::string(8, 'x')), 10));
  EXPECT_FALSE(pending_append(p, as_bytes("abc"), 10));
  EXPECT_EQ(as_chars(p->view()), std::string(8, 'x'));
  ASSERT_TRUE(pending_append(p, as_bytes("ab"), 10));
  EXPECT_EQ(p->size, 10u);
  EXPECT_LE(p->capacity, 10u) << "capacity is clamped to the limit";
  pending_free(p);
}

}  // namespace
}  // namespace tcpms::net
