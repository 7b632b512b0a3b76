// OutQueue and ChunkPool: bytes leave in the order they were queued, whatever mix of copied
// chunks and shared references holds them, and every chunk goes back to the pool.
#include "net/out_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tcpms::net {
namespace {

std::string pattern(size_t n, unsigned seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

// Everything the queue would write, front to back.
std::string contents(const OutQueue& q) {
  iovec iov[1024];
  int n = q.gather(iov, 1024);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(ChunkPool, ReusesChunksAndKeepsAtMostMaxFree) {
  ChunkPool pool(2);
  Chunk* a = pool.get();
  Chunk* b = pool.get();
  Chunk* c = pool.get();
  EXPECT_EQ(pool.in_use(), 3u);
  a->used = 100;
  pool.put(a);
  pool.put(b);
  pool.put(c);  // past max_free: freed, not kept
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.idle(), 2u);
  Chunk* again = pool.get();
  EXPECT_TRUE(again == a || again == b);
  EXPECT_EQ(again->used, 0u) << "a reused chunk must come back empty";
  EXPECT_EQ(pool.idle(), 1u);
  pool.put(again);
}

TEST(ChunkPool, ShedsOnlyTheChunksNoGetNeededSinceTheLastShed) {
  ChunkPool pool;
  std::vector<Chunk*> burst;
  for (int i = 0; i < 10; ++i) burst.push_back(pool.get_small());
  for (Chunk* c : burst) pool.put(c);
  EXPECT_EQ(pool.idle(), 10u);
  // The burst drew the pool to empty: none of its chunks was idle the whole interval.
  EXPECT_EQ(pool.shed_unused(0, 2), 0u);
  EXPECT_EQ(pool.idle(), 10u);
  // Four in use meanwhile: the six idle throughout are surplus, less the two kept.
  std::vector<Chunk*> some;
  for (int i = 0; i < 4; ++i) some.push_back(pool.get_small());
  for (Chunk* c : some) pool.put(c);
  EXPECT_EQ(pool.shed_unused(0, 2), 4u);
  EXPECT_EQ(pool.idle(), 6u);
  // Nothing used since: all but the two kept go.
  EXPECT_EQ(pool.shed_unused(0, 2), 4u);
  EXPECT_EQ(pool.idle(), 2u);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(OutQueue, SmallAppendUsesOneChunkAndReturnsItWhenConsumed) {
  ChunkPool pool;
  OutQueue q(pool);
  EXPECT_TRUE(q.empty());
  q.append(as_bytes("hello "));
  q.append(as_bytes("world"));
  EXPECT_EQ(q.bytes(), 11u);
  EXPECT_EQ(pool.in_use(), 1u) << "consecutive small appends share a chunk";
  EXPECT_EQ(contents(q), "hello world");
  q.consume(3);
  EXPECT_EQ(contents(q), "lo world");
  EXPECT_EQ(q.bytes(), 8u);
  q.consume(8);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(OutQueue, LargeAppendSpansChunksInOrder) {
  ChunkPool pool;
  OutQueue q(pool);
  std::string data = pattern(3 * Chunk::kBytes + 123);
  q.append(as_bytes(data));
  EXPECT_EQ(pool.in_use(), 4u);
  EXPECT_EQ(contents(q), data);
  // Consume in odd steps across chunk boundaries; what is left is always the suffix.
  size_t off = 0;
  for (size_t step : {1u, 16367u, 2u, 16000u, 5000u}) {
    q.consume(step);
    off += step;
    ASSERT_EQ(contents(q), data.substr(off)) << "after consuming " << off;
    ASSERT_EQ(q.bytes(), data.size() - off);
  }
  q.consume(q.bytes());
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(OutQueue, SharedPayloadIsReferencedWhenLargeAndCopiedWhenSmall) {
  ChunkPool pool;
  OutQueue q(pool);
  SharedBytes big = SharedBytes::copy_of(as_bytes(pattern(4000, 3)));
  SharedBytes small = SharedBytes::copy_of(as_bytes("tiny"));
  q.append(as_bytes("head:"));
  q.append_shared(big);
  q.append_shared(small);
  q.append(as_bytes(":tail"));
  EXPECT_EQ(big.use_count(), 2u) << "a payload above kShareThreshold is held by reference";
  EXPECT_EQ(small.use_count(), 1u) << "a small payload is copied";
  EXPECT_EQ(contents(q), "head:" + pattern(4000, 3) + "tiny:tail");
  q.consume(5 + 4000);
  EXPECT_EQ(big.use_count(), 1u) << "the reference is dropped once the payload is sent";
  EXPECT_EQ(contents(q), "tiny:tail");
  q.clear();
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(OutQueue, SharedPayloadFromOffset) {
  ChunkPool pool;
  OutQueue q(pool);
  std::string body = pattern(5000, 1);
  SharedBytes b = SharedBytes::copy_of(as_bytes(body));
  q.append_shared(b, 1000);  // still large: by reference
  EXPECT_EQ(b.use_count(), 2u);
  q.append_shared(b, 4500);  // 500 bytes left: copied
  EXPECT_EQ(b.use_count(), 2u);
  EXPECT_EQ(contents(q), body.substr(1000) + body.substr(4500));
  EXPECT_EQ(q.bytes(), 4000u + 500u);
}

TEST(OutQueue, ManySegmentsInterleavedWithConsumeKeepOrder) {
  // Enough segments to trigger the front compaction (head_ > 32), mixing both kinds.
  ChunkPool pool;
  OutQueue q(pool);
  std::string expected;
  std::vector<SharedBytes> keep;
  for (int i = 0; i < 200; ++i) {
    std::string part = pattern(1500 + i, static_cast<unsigned>(i));
    if (i % 2) {
      keep.push_back(SharedBytes::copy_of(as_bytes(part)));
      q.append_shared(keep.back());
    } else {
      q.append(as_bytes(part));
    }
    expected += part;
    if (i % 3 == 0) {
      size_t n = std::min<size_t>(2500, q.bytes());
      q.consume(n);
      expected.erase(0, n);
    }
    ASSERT_EQ(q.bytes(), expected.size());
  }
  ASSERT_EQ(contents(q), expected);
  q.consume(q.bytes());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool.in_use(), 0u);
  for (auto& k : keep) EXPECT_EQ(k.use_count(), 1u);
}

TEST(OutQueue, GatherRespectsMaxIovecs) {
  ChunkPool pool;
  OutQueue q(pool);
  std::string data = pattern(5 * Chunk::kBytes);
  q.append(as_bytes(data));
  iovec iov[2];
  ASSERT_EQ(q.gather(iov, 2), 2);
  EXPECT_EQ(iov[0].iov_len + iov[1].iov_len, 2 * Chunk::kBytes);
}

TEST(OutQueue, DestructorReturnsChunks) {
  ChunkPool pool;
  {
    OutQueue q(pool);
    q.append(as_bytes(pattern(40000)));
    EXPECT_GT(pool.in_use(), 0u);
  }
  EXPECT_EQ(pool.in_use(), 0u);
}

}  // namespace
// A fan-out to a slow subscriber queues header, shared payload, header, shared payload...:
// each header must take a small chunk, and the queue's footprint (what the output limits
// check) must count the chunks, then return to 0.
TEST(OutQueue, HeadersBetweenSharedPayloadsTakeSmallChunksAndAreCounted) {
  ChunkPool pool;
  OutQueue q(pool);
  SharedBytes payload = SharedBytes::copy_of(as_bytes(pattern(4000)));
  for (int i = 0; i < 10; ++i) {
    q.append(as_bytes("hdr"));
    q.append_shared(payload);
  }
  EXPECT_EQ(q.bytes(), 10u * (3 + 4000));
  EXPECT_EQ(q.footprint(), 10u * (Chunk::kSmallBytes + 4000));
  q.consume(q.bytes());
  EXPECT_EQ(q.footprint(), 0u);
  EXPECT_EQ(pool.in_use(), 0u);
}

}  // namespace tcpms::net
