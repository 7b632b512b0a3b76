// TokenBucket arithmetic, LoginThrottle (refunds, bounded memory) and LoginGuard (per user and
// address, looser per address).
#include "auth/login_throttle.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <thread>

#include "auth/token_bucket.h"

namespace tcpms::auth {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point t0 = Clock::time_point(seconds(1000));

TEST(TokenBucket, BurstThenRate) {
  TokenBucketLimits lim{2.0, 3.0};
  TokenBucket b(lim.burst, t0);
  EXPECT_TRUE(b.try_take(lim, 1, t0));
  EXPECT_TRUE(b.try_take(lim, 2, t0));
  EXPECT_FALSE(b.try_take(lim, 1, t0));
  EXPECT_FALSE(b.try_take(lim, 1, t0 + milliseconds(400)));  // 0.8 tokens
  EXPECT_TRUE(b.try_take(lim, 1, t0 + milliseconds(500)));
  EXPECT_DOUBLE_EQ(b.available(lim, t0 + seconds(100)), 3.0);  // capped at the burst
  EXPECT_TRUE(b.full(lim, t0 + seconds(100)));
}

TEST(TokenBucket, FailedTakeTakesNothingAndWaitForSaysWhen) {
  TokenBucketLimits lim{10.0, 100.0};  // e.g. bytes
  TokenBucket b(5, t0);
  EXPECT_FALSE(b.try_take(lim, 6, t0));
  EXPECT_DOUBLE_EQ(b.available(lim, t0), 5.0);
  EXPECT_EQ(b.wait_for(lim, 6, t0), milliseconds(100));
  EXPECT_EQ(b.wait_for(lim, 5, t0), Clock::duration::zero());
  EXPECT_EQ(b.wait_for(lim, 101, t0), Clock::duration::max());  // more than the burst: never
  EXPECT_EQ(b.wait_for({0.0, 100.0}, 6, t0), Clock::duration::max());
}

TEST(TokenBucket, GiveBackCapsAndOldTimestampsDoNotRefill) {
  TokenBucketLimits lim{1.0, 2.0};
  TokenBucket b(0, t0);
  b.give_back(lim, 5, t0);
  EXPECT_DOUBLE_EQ(b.available(lim, t0), 2.0);
  EXPECT_TRUE(b.try_take(lim, 2, t0 + seconds(1)));
  EXPECT_DOUBLE_EQ(b.available(lim, t0), 0.0);  // an earlier time earns nothing
  TokenBucket none(0, t0);
  EXPECT_FALSE(none.try_take({1.0, 0.0}, 1, t0 + seconds(10)));  // burst 0 refuses all
  EXPECT_EQ(sizeof(TokenBucket), 16u);
}

IpKey key(std::string_view ip) { return *ip_key_from_string(ip); }

TEST(IpKey, V4MappedAndV6Prefix) {
  EXPECT_EQ(key("192.0.2.1"), key("::ffff:192.0.2.1"));
  EXPECT_NE(key("192.0.2.1"), key("192.0.2.2"));
  EXPECT_EQ(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));  // same /64
  EXPECT_NE(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
  EXPECT_NE(*ip_key_from_string("2001:db8::1", 128), *ip_key_from_string("2001:db8::2", 128));
  EXPECT_FALSE(ip_key_from_string("nope"));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
  EXPECT_EQ(*ip_key_from_sockaddr(reinterpret_cast<sockaddr*>(&sin)), key("192.0.2.1"));
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8:1:2::77", &sin6.sin6_addr);
  EXPECT_EQ(*ip_key_from_sockaddr(reinterpret_cast<sockaddr*>(&sin6)), key("2001:db8:1:2::"));
  sockaddr unix_addr{};
  unix_addr.sa_family = AF_UNIX;
  EXPECT_FALSE(ip_key_from_sockaddr(&unix_addr));
}

TEST(LoginThrottle, FailuresUseTheBurstThenTheRate) {
  LoginThrottle th({{0.5, 3}, 1024, 4});
  IpKey a = key("198.51.100.7"), b = key("198.51.100.8");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(th.try_acquire(a, t0)) << i;  // 3 failures
  EXPECT_FALSE(th.try_acquire(a, t0));
  EXPECT_TRUE(th.try_acquire(b, t0));  // other addresses are not affected
  EXPECT_FALSE(th.try_acquire(a, t0 + seconds(1)));
  EXPECT_TRUE(th.try_acquire(a, t0 + seconds(2)));  // one token per 2 s
  EXPECT_EQ(th.stats().refused, 2u);
}

TEST(LoginThrottle, SuccessRefundsAndForgets) {
  LoginThrottle th({{0.5, 2}, 1024, 4});
  IpKey a = key("203.0.113.1");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(th.try_acquire(a, t0)) << i;
    th.on_success(a, t0);
  }
  EXPECT_EQ(th.stats().entries, 0u);  // a full bucket is not kept
  EXPECT_TRUE(th.try_acquire(a, t0));  // a failure is remembered
  EXPECT_EQ(th.stats().entries, 1u);
}

TEST(LoginThrottle, BoundedTableEvictsOldest) {
  LoginThrottle th({{0.001, 1}, 64, 1});
  for (int i = 0; i < 200; ++i) {
    IpKey k = key("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    EXPECT_TRUE(th.try_acquire(k, t0));
  }
  auto st = th.stats();
  EXPECT_EQ(st.entries, 64u);
  EXPECT_EQ(st.evicted_active, 136u);
  // The newest are still limited; the oldest were forgotten.
  EXPECT_FALSE(th.try_acquire(key("10.0.0.199"), t0));
  EXPECT_TRUE(th.try_acquire(key("10.0.0.0"), t0));
}

TEST(LoginThrottle, RefilledBucketsGoFirst) {
  LoginThrottle th({{1.0, 1}, 4, 1});
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(th.try_acquire(key("10.1.0." + std::to_string(i)), t0));
  // Ten seconds later every old bucket has refilled: they are dropped, not counted as evictions.
  EXPECT_TRUE(th.try_acquire(key("10.2.0.1"), t0 + seconds(10)));
  auto st = th.stats();
  EXPECT_EQ(st.evicted_active, 0u);
  EXPECT_EQ(st.entries, 1u);
}

TEST(LoginThrottle, ParallelAttemptsCannotOverdraw) {
  LoginThrottle th({{0.0, 5}, 1024, 16});
  IpKey a = key("192.0.2.50");
  std::atomic<int> granted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        if (th.try_acquire(a, t0)) ++granted;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(granted.load(), 5);
}

TEST(LoginGuard, OneUsersWrongGuessesDoNotLockOutOthersFromTheAddress) {
  // Issue 14 #12: 10 wrong guesses for one user used to refuse everyone from that address.
  LoginGuard g({{0.2, 10}, {1.0, 100}, 1024});
  IpKey nat = key("198.51.100.1");
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(g.try_acquire(nat, "mallory", t0), LoginGuard::Verdict::kGo) << i;
  EXPECT_EQ(g.try_acquire(nat, "mallory", t0), LoginGuard::Verdict::kUserThrottled);
  // Other users of the address log in (and their success refunds both buckets).
  for (const char* user : {"alice", "bob"}) {
    ASSERT_EQ(g.try_acquire(nat, user, t0), LoginGuard::Verdict::kGo) << user;
    g.on_success(nat, user, t0);
  }
  // The same user from elsewhere is not throttled either.
  EXPECT_EQ(g.try_acquire(key("198.51.100.2"), "mallory", t0), LoginGuard::Verdict::kGo);
}

TEST(LoginGuard, ManyUsersFromOneAddressMeetTheAddressCap) {
  LoginGuard g({{0.2, 10}, {1.0, 20}, 1024});
  IpKey a = key("203.0.113.9");
  int go = 0;
  for (int i = 0; i < 50; ++i)
    if (g.try_acquire(a, "user" + std::to_string(i), t0) == LoginGuard::Verdict::kGo) ++go;
  EXPECT_EQ(go, 20);
  EXPECT_EQ(g.try_acquire(a, "fresh", t0), LoginGuard::Verdict::kAddressThrottled);
  // Refused by the address cap: the user's own bucket got its token back.
  EXPECT_EQ(g.stats().per_user_address.entries, 20u);
  EXPECT_EQ(g.try_acquire(a, "fresh", t0 + seconds(1)), LoginGuard::Verdict::kGo);
}

TEST(LoginGuard, ARateOfZeroTurnsABucketOff) {
  LoginGuard g({{0.0, 10}, {0.0, 100}, 1024});
  IpKey a = key("203.0.113.10");
  for (int i = 0; i < 500; ++i) ASSERT_EQ(g.try_acquire(a, "u", t0), LoginGuard::Verdict::kGo);
  EXPECT_EQ(g.stats().per_address.entries, 0u);
}

}  // namespace
}  // namespace tcpms::auth
