// The pure parts of the per-node streams: entry ids, duplicate filter (receiver), outbox (sender).
#include "cluster/node_stream.h"

#include <gtest/gtest.h>

namespace tcpms::cluster {
namespace {

TEST(DuplicateFilter, DropsWhatASenderAlreadyDelivered) {
  DuplicateFilter f;
  EXPECT_TRUE(f.accept("n1/7-1", 5));
  EXPECT_TRUE(f.accept("n1/7-1", 6));
  EXPECT_FALSE(f.accept("n1/7-1", 6));  // a retried batch
  EXPECT_FALSE(f.accept("n1/7-1", 3));
  EXPECT_TRUE(f.accept("n1/7-1", 9));   // gaps: the sender's other messages went elsewhere
  // Another sender, or the same node restarted (a new incarnation), counts on its own.
  EXPECT_TRUE(f.accept("n2/8-1", 1));
  EXPECT_TRUE(f.accept("n1/9-2", 1));
  EXPECT_EQ(f.senders(), 3u);
}

TEST(StreamIds, NumericOrderAndMilliseconds) {
  EXPECT_TRUE(stream_id_less("0-0", "1-0"));
  EXPECT_TRUE(stream_id_less("1700000000000-9", "1700000000000-10"));  // not text order
  EXPECT_TRUE(stream_id_less("999-5", "1000-0"));
  EXPECT_FALSE(stream_id_less("1000-0", "1000-0"));
  EXPECT_TRUE(stream_id_less("", "0-1"));  // unparsable sorts first
  EXPECT_EQ(stream_id_ms("1700000000123-4"), 1700000000123u);
  EXPECT_EQ(stream_id_ms("junk"), 0u);
}

TEST(StreamIds, SessionRequestExpiresInRedisClock) {
  EXPECT_FALSE(request_expired("10000-0", 12999, 3000));
  EXPECT_FALSE(request_expired("10000-0", 13000, 3000));
  EXPECT_TRUE(request_expired("10000-0", 13001, 3000));
  EXPECT_FALSE(request_expired("10000-0", 9000, 3000));  // Redis' clock went back: not stale
  EXPECT_FALSE(request_expired("junk", 99999, 3000));     // unknown age: honoured
}

Outbox::Item item(uint64_t seq) {
  return {"n2", std::make_shared<const std::string>("frame" + std::to_string(seq)), seq};
}

TEST(Outbox, KeepsOrderAndDropsTheOldestPastCapacity) {
  Outbox o(3);
  EXPECT_EQ(o.push(item(1)), 0u);
  EXPECT_EQ(o.push(item(2)), 0u);
  EXPECT_EQ(o.push(item(3)), 0u);
  EXPECT_EQ(o.push(item(4)), 1u);  // 1 is dropped
  auto first = o.take(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].seq, 2u);
  EXPECT_EQ(first[1].seq, 3u);
  EXPECT_EQ(*first[1].frame, "frame3");
  EXPECT_EQ(o.size(), 1u);
}

TEST(Outbox, PutBackGoesInFrontInOrder) {
  Outbox o(4);
  for (uint64_t s = 1; s <= 4; ++s) o.push(item(s));
  auto taken = o.take(2);  // 1, 2
  o.push(item(5));
  o.push(item(6));         // 3 4 5 6
  EXPECT_EQ(o.put_back(std::move(taken)), 2u);  // 1 2 3 4 5 6 -> the oldest two go
  auto all = o.take(10);
  ASSERT_EQ(all.size(), 4u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, 3 + i);
  EXPECT_TRUE(o.empty());
}

}  // namespace
}  // namespace tcpms::cluster

namespace tcpms::cluster {
namespace {

TEST(StreamEntry, ParsesAFrameEntry) {
  std::vector<std::string_view> f{"s", "n1/123-456", "n", "17", "p", "3", "f", "\x01\x02"};
  auto e = parse_entry(f, 32);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->sender, "n1/123-456");
  EXPECT_EQ(e->node(), "n1");
  EXPECT_EQ(e->incarnation(), "123-456");
  EXPECT_EQ(e->seq, 17u);
  EXPECT_EQ(e->slot, 3);
  EXPECT_FALSE(e->up);
  EXPECT_EQ(e->frame, "\x01\x02");
}

TEST(StreamEntry, ParsesAnUpEntryAndANodeNameWithASlash) {
  std::vector<std::string_view> f{"s", "rack/a/1-2", "n", "1", "p", "0", "c", "up"};
  auto e = parse_entry(f, 32);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->up);
  EXPECT_EQ(e->node(), "rack/a");
}

TEST(StreamEntry, RefusesWhatIsMissingOrMalformed) {
  using F = std::vector<std::string_view>;
  EXPECT_FALSE(parse_entry(F{"n", "1", "p", "0", "f", "x"}, 32));                      // no sender
  EXPECT_FALSE(parse_entry(F{"s", "n1", "n", "1", "p", "0", "f", "x"}, 32));           // no '/'
  EXPECT_FALSE(parse_entry(F{"s", "n1/1", "n", "1x", "p", "0", "f", "x"}, 32));        // sequence
  EXPECT_FALSE(parse_entry(F{"s", "n1/1", "n", "1", "p", "32", "f", "x"}, 32));        // slot
  EXPECT_FALSE(parse_entry(F{"s", "n1/1", "n", "1", "p", "0"}, 32));                   // neither
  EXPECT_FALSE(parse_entry(F{"s", "n1/1", "n", "1", "p", "0", "f", "x", "c", "up"}, 32));  // both
  EXPECT_FALSE(parse_entry(F{"s", "n1/1", "n", "1", "p", "0", "c", "later"}, 32));     // unknown word
  EXPECT_FALSE(parse_entry(F{"s", "n1/1", "n", "1", "p", "0", "f"}, 32));              // odd count
}

TEST(NodeValue, SlotAndIncarnation) {
  auto v = parse_node_value("5 999-1", 32);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->slot, 5);
  EXPECT_EQ(v->incarnation, "999-1");
  EXPECT_FALSE(parse_node_value("40 x", 32));
  EXPECT_FALSE(parse_node_value("5", 32));
  EXPECT_FALSE(parse_node_value("5 ", 32));
  EXPECT_FALSE(parse_node_value("a b", 32));
}

}  // namespace
}  // namespace tcpms::cluster
