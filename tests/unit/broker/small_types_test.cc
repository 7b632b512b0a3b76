// SmallString and InlineVector: the compact building blocks of per-client state.
#include <gtest/gtest.h>

#include <string>

#include "broker/inline_vector.h"
#include "broker/small_string.h"

namespace tcpms::broker {
namespace {

TEST(SmallString, InlineAndHeap) {
  SmallString a("client-0123456789abcde");  // 22 chars: inline
  EXPECT_FALSE(a.is_heap());
  EXPECT_EQ(a.view(), "client-0123456789abcde");
  SmallString b(std::string(100, 'x'));
  EXPECT_TRUE(b.is_heap());
  EXPECT_EQ(b.size(), 100u);
  SmallString c = b;
  EXPECT_EQ(c.view(), b.view());
  SmallString d = std::move(b);
  EXPECT_EQ(d.size(), 100u);
  EXPECT_TRUE(b.empty());
  a = d;
  EXPECT_EQ(a.size(), 100u);
  SmallString e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(sizeof(SmallString), 24u);
}

TEST(InlineVector, GrowShrinkSwapRemove) {
  InlineVector<int> v;
  EXPECT_EQ(v.push_back(1), 0u);
  for (int i = 2; i <= 20; ++i) v.push_back(i);
  EXPECT_EQ(v.size(), 20u);
  EXPECT_TRUE(v.swap_remove(0));  // 20 moves to 0
  EXPECT_EQ(v[0], 20);
  EXPECT_FALSE(v.swap_remove(v.size() - 1));
  while (v.size() > 1) v.swap_remove(0);
  EXPECT_EQ(v.size(), 1u);
  v.clear();
  EXPECT_TRUE(v.empty());
}

}  // namespace
}  // namespace tcpms::broker
