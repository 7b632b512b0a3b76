// DecisionCache (TTL, bounded LRU) and CircuitBreaker (closed, open, one trial when half-open):
// what the HTTP auth service's client rests on.
#include "auth/circuit_breaker.h"
#include "auth/decision_cache.h"

#include <gtest/gtest.h>

namespace tcpms::auth {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
const Clock::time_point t0 = Clock::time_point(seconds(1000));

TEST(DecisionCache, AnswersUntilTheirTtlThenForgets) {
  DecisionCache c(10);
  c.put("alice|publish|a/b", true, seconds(60), t0);
  c.put("mallory|publish|a/b", false, seconds(10), t0);
  EXPECT_EQ(c.get("alice|publish|a/b", t0 + seconds(59)), true);
  EXPECT_EQ(c.get("mallory|publish|a/b", t0 + seconds(9)), false);
  EXPECT_EQ(c.get("mallory|publish|a/b", t0 + seconds(10)), std::nullopt);  // expired, dropped
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.get("nobody", t0), std::nullopt);
  c.put("zero", true, seconds(0), t0);  // a TTL of 0 keeps nothing
  EXPECT_EQ(c.get("zero", t0), std::nullopt);
  // A new answer replaces the old one and its deadline.
  c.put("alice|publish|a/b", false, seconds(5), t0 + seconds(1));
  EXPECT_EQ(c.get("alice|publish|a/b", t0 + seconds(2)), false);
}

TEST(DecisionCache, BoundedLeastRecentlyUsedFirstOut) {
  DecisionCache c(3);
  for (const char* k : {"a", "b", "c"}) c.put(k, true, seconds(60), t0);
  EXPECT_TRUE(c.get("a", t0));  // a is now the most recent
  c.put("d", true, seconds(60), t0);  // b goes
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(c.get("b", t0));
  EXPECT_TRUE(c.get("a", t0) && c.get("c", t0) && c.get("d", t0));
  EXPECT_EQ(c.evictions(), 1u);
}

TEST(CircuitBreaker, OpensAfterFailuresInARowAndTriesOnceWhenTheTimeIsUp) {
  CircuitBreaker b(3, seconds(5));
  EXPECT_TRUE(b.allow(t0));
  b.on_failure(t0);
  b.on_failure(t0);
  b.on_success();  // the run of failures is broken
  b.on_failure(t0);
  b.on_failure(t0);
  EXPECT_EQ(b.state(), CircuitBreaker::State::kClosed);
  b.on_failure(t0);
  EXPECT_EQ(b.state(), CircuitBreaker::State::kOpen);
  EXPECT_FALSE(b.allow(t0 + seconds(4)));
  // Half-open: one trial, everyone else still refused until it answers.
  EXPECT_TRUE(b.allow(t0 + seconds(5)));
  EXPECT_FALSE(b.allow(t0 + seconds(5)));
  b.on_failure(t0 + seconds(5));  // the trial failed: open again
  EXPECT_FALSE(b.allow(t0 + seconds(9)));
  EXPECT_TRUE(b.allow(t0 + seconds(10)));
  b.on_success();
  EXPECT_EQ(b.state(), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(b.allow(t0 + seconds(10)));
  EXPECT_EQ(b.opened_total(), 2u);
}

}  // namespace
}  // namespace tcpms::auth
