// Target and source parsing, and the source-address plan of tcpms-bench.
#include "targets.h"

#include <gtest/gtest.h>

#include <map>

namespace tcpms::benchapp {
namespace {

std::string host(const Endpoint& e) {
  std::string s = e.to_string();
  return s.substr(0, s.rfind(':'));
}

TEST(ParseTarget, OneAddress) {
  std::string err;
  auto t = parse_target("127.0.0.1:7000", &err);
  ASSERT_TRUE(t) << err;
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ(t->front().port(), 7000);
  EXPECT_EQ(t->front().to_string(), "127.0.0.1:7000");
}

TEST(ParseTarget, PortRangeIsInclusive) {
  auto t = parse_target("127.0.0.1:7000-7029", nullptr);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 30u);
  EXPECT_EQ(t->front().port(), 7000);
  EXPECT_EQ(t->back().port(), 7029);
  EXPECT_EQ(host(t->back()), "127.0.0.1");
}

TEST(ParseTarget, Ipv6AndRange) {
  auto t = parse_target("[::1]:7000-7001", nullptr);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ(t->front().family(), AF_INET6);
  EXPECT_EQ(t->back().port(), 7001);
}

TEST(ParseTarget, RejectsBadInput) {
  std::string err;
  EXPECT_FALSE(parse_target("127.0.0.1:7001-7000", &err));
  EXPECT_NE(err.find("low to high"), std::string::npos) << err;
  EXPECT_FALSE(parse_target("127.0.0.1:0-5", nullptr));
  EXPECT_FALSE(parse_target("127.0.0.1:7000-70000", nullptr));
  EXPECT_FALSE(parse_target("127.0.0.1:0", nullptr));
  EXPECT_FALSE(parse_target("nohost", nullptr));
  EXPECT_FALSE(parse_target("127.0.0.1:70x0", nullptr));
}

TEST(ParseTargets, ConcatenatesInOrder) {
  auto t = parse_targets({"127.0.0.1:7000-7001", "127.0.0.1:9000"}, nullptr);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[2].port(), 9000);
  std::string err;
  EXPECT_FALSE(parse_targets({}, &err));
}

TEST(ParseSourceIps, RangeAndList) {
  auto r = parse_source_ips("127.0.0.2-127.0.1.1", nullptr);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 256u);  // .0.2 .. .0.255 is 254, plus .1.0 and .1.1
  EXPECT_EQ(host(r->front()), "127.0.0.2");
  EXPECT_EQ(host(r->back()), "127.0.1.1");
  EXPECT_EQ(r->front().port(), 0);

  auto l = parse_source_ips("10.0.0.1,10.0.0.3", nullptr);
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ(host((*l)[1]), "10.0.0.3");
}

TEST(ParseSourceIps, RejectsBadInput) {
  EXPECT_FALSE(parse_source_ips("127.0.0.9-127.0.0.2", nullptr));
  EXPECT_FALSE(parse_source_ips("127.0.0.x", nullptr));
  EXPECT_FALSE(parse_source_ips("", nullptr));
  EXPECT_FALSE(parse_source_ips(",", nullptr));
}

TEST(PlanSources, SmallLoopbackRunLeavesTheSourceToTheKernel) {
  auto targets = *parse_target("127.0.0.1:7000", nullptr);
  SourcePlan p = plan_sources(targets, kConnectionsPerPair, {});
  EXPECT_TRUE(p.sources.empty());
  EXPECT_EQ(p.per_pair_max, kConnectionsPerPair);
  EXPECT_TRUE(p.warning.empty());
}

TEST(PlanSources, MillionOnOnePortGetsEnoughLoopbackSources) {
  auto targets = *parse_target("127.0.0.1:7000", nullptr);
  SourcePlan p = plan_sources(targets, 1'000'000, {});
  ASSERT_EQ(p.sources.size(), 250u);  // 1M / 4,000
  EXPECT_TRUE(p.automatic);
  EXPECT_EQ(host(p.sources.front()), "127.0.0.2");
  EXPECT_EQ(host(p.sources.back()), "127.0.0.251");
  EXPECT_LE(p.per_pair_max, kConnectionsPerPair);
  EXPECT_TRUE(p.warning.empty());
  EXPECT_NE(p.description.find("127.0.0.2-127.0.0.251"), std::string::npos) << p.description;
}

TEST(PlanSources, PortRangeDividesTheNeed) {
  auto targets = *parse_target("127.0.0.1:7000-7029", nullptr);
  SourcePlan p = plan_sources(targets, 1'000'000, {});
  // 33,334 per port: nine sources per port keep each pair at 3,704.
  EXPECT_EQ(p.sources.size(), 9u);
  EXPECT_EQ(p.per_pair_max, 3704);
  // Thirty ports at 30,000 connections need no source at all.
  EXPECT_TRUE(plan_sources(targets, 30000, {}).sources.empty());
}

TEST(PlanSources, GivenSourcesAreUsedAndCheckedAgainstThePortBudget) {
  auto targets = *parse_target("127.0.0.1:7000", nullptr);
  auto given = *parse_source_ips("127.0.0.2-127.0.0.3", nullptr);
  SourcePlan p = plan_sources(targets, 100000, given);
  EXPECT_FALSE(p.automatic);
  EXPECT_EQ(p.sources.size(), 2u);
  EXPECT_EQ(p.per_pair_max, 50000);
  EXPECT_FALSE(p.warning.empty());
}

TEST(PlanSources, RemoteTargetWarnsInsteadOfInventingSources) {
  auto targets = *parse_target("10.1.2.3:7000", nullptr);
  SourcePlan p = plan_sources(targets, 100000, {});
  EXPECT_TRUE(p.sources.empty());
  EXPECT_FALSE(p.warning.empty());
}

TEST(ChoosePair, FillsEveryPairEvenly) {
  std::map<std::pair<size_t, size_t>, int> load;
  for (uint64_t i = 0; i < 3 * 4 * 10; ++i) {
    PairChoice c = choose_pair(i, 3, 4);
    ASSERT_TRUE(c.source);
    ++load[{c.target, *c.source}];
  }
  ASSERT_EQ(load.size(), 12u);
  for (const auto& [pair, n] : load) EXPECT_EQ(n, 10);
  EXPECT_FALSE(choose_pair(5, 3, 0).source);
  EXPECT_EQ(choose_pair(5, 3, 0).target, 2u);
}

}  // namespace
}  // namespace tcpms::benchapp
