// Lease bookkeeping: refresh schedule, own-lease expiry, and joins/leaves from node scans;
// plus Redis URL parsing.
#include "cluster/lease.h"

#include <gtest/gtest.h>

#include "cluster/redis_client.h"

namespace tcpms::cluster {
namespace {

using V = std::vector<std::string>;

TEST(Lease, RefreshEveryThirdOfTheLease) {
  LeaseTable l(3000);
  EXPECT_EQ(l.refresh_period_ms(), 1000u);
  EXPECT_TRUE(l.refresh_due(0));
  EXPECT_TRUE(l.must_rebuild(0));  // never written
  l.refreshed(10000);
  EXPECT_FALSE(l.refresh_due(10999));
  EXPECT_TRUE(l.refresh_due(11000));
  EXPECT_EQ(l.next_refresh_ms(), 11000u);
  EXPECT_FALSE(l.must_rebuild(12999));
  EXPECT_TRUE(l.must_rebuild(13000));  // our keys may have expired in Redis
}

TEST(Lease, FailedRefreshRetriesSoon) {
  LeaseTable l(9000);
  l.refreshed(0);
  l.refresh_failed(3000);
  EXPECT_EQ(l.next_refresh_ms(), 3250u);
}

TEST(Lease, TinyLeasesAreRaised) {
  LeaseTable l(10);
  EXPECT_EQ(l.lease_ms(), 300u);
}

TEST(RedisUrl, Forms) {
  std::string err;
  auto a = parse_redis_url("redis://10.0.0.5:6380", &err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->host, "10.0.0.5");
  EXPECT_EQ(a->port, 6380);
  a = parse_redis_url("redis://cache/", &err);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "cache");
  EXPECT_EQ(a->port, 6379);
  a = parse_redis_url("127.0.0.1:7000", &err);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->to_string(), "127.0.0.1:7000");
  EXPECT_FALSE(parse_redis_url("redis://", &err));
  EXPECT_FALSE(parse_redis_url("redis://h:0", &err));
  EXPECT_FALSE(parse_redis_url("redis://h:99999", &err));
  EXPECT_FALSE(parse_redis_url("redis://:6379", &err));
  EXPECT_FALSE(parse_redis_url("rediss://h:6379", &err));
  EXPECT_NE(err.find("only redis://"), std::string::npos);
  EXPECT_NE(err.find("redis://HOST:PORT"), std::string::npos);
}

}  // namespace
}  // namespace tcpms::cluster
