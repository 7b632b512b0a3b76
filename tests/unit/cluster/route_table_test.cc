// RouteTable: the other nodes' filters as a trie; matching as MQTT 3.1.1 §4.7 says.
#include "cluster/route_table.h"

#include <gtest/gtest.h>

namespace tcpms::cluster {
namespace {

std::vector<std::string> names(const RouteTable& t, const NodeSet& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < t.node_names(); ++i)
    if (s.test(i)) out.push_back(t.node_name(static_cast<uint16_t>(i)));
  return out;
}

using V = std::vector<std::string>;

TEST(RouteTable, ExactAndWildcards) {
  RouteTable t;
  uint16_t a = t.node_index("a"), b = t.node_index("b"), c = t.node_index("c");
  EXPECT_TRUE(t.add(a, "sport/tennis/player1"));
  EXPECT_TRUE(t.add(b, "sport/+/player1"));
  EXPECT_TRUE(t.add(c, "sport/#"));
  EXPECT_EQ(names(t, t.match("sport/tennis/player1")), (V{"a", "b", "c"}));
  EXPECT_EQ(names(t, t.match("sport/golf/player1")), (V{"b", "c"}));
  EXPECT_EQ(names(t, t.match("sport")), (V{"c"}));  // "sport/#" matches its parent
  EXPECT_EQ(names(t, t.match("sport/tennis")), (V{"c"}));
  EXPECT_EQ(names(t, t.match("news")), V{});
  EXPECT_EQ(names(t, t.match("sport/tennis/player1/x")), (V{"c"}));
  EXPECT_EQ(t.route_count(), 3u);
}

TEST(RouteTable, PlusMatchesOneLevelIncludingEmpty) {
  RouteTable t;
  uint16_t a = t.node_index("a");
  t.add(a, "+/+");
  EXPECT_EQ(names(t, t.match("/finance")), (V{"a"}));
  EXPECT_EQ(names(t, t.match("x/y")), (V{"a"}));
  EXPECT_EQ(names(t, t.match("x")), V{});
  EXPECT_EQ(names(t, t.match("x/y/z")), V{});
}

TEST(RouteTable, DollarTopicsSkipFirstLevelWildcards) {
  RouteTable t;
  uint16_t a = t.node_index("a"), b = t.node_index("b"), c = t.node_index("c");
  t.add(a, "#");
  t.add(b, "+/monitor/Clients");
  t.add(c, "$SYS/#");
  EXPECT_EQ(names(t, t.match("$SYS/monitor/Clients")), (V{"c"}));  // [MQTT-4.7.2-1]
  EXPECT_EQ(names(t, t.match("x/monitor/Clients")), (V{"a", "b"}));
}

TEST(RouteTable, RemoveAndPrune) {
  RouteTable t;
  uint16_t a = t.node_index("a"), b = t.node_index("b");
  t.add(a, "x/y");
  t.add(b, "x/y");
  EXPECT_FALSE(t.add(a, "x/y"));  // already there
  EXPECT_TRUE(t.remove(a, "x/y"));
  EXPECT_FALSE(t.remove(a, "x/y"));
  EXPECT_EQ(names(t, t.match("x/y")), (V{"b"}));
  t.remove(b, "x/y");
  EXPECT_EQ(names(t, t.match("x/y")), V{});
  EXPECT_EQ(t.route_count(), 0u);
}

TEST(RouteTable, SharedSubscriptionsRouteByTheirFilter) {
  RouteTable t;
  uint16_t a = t.node_index("a");
  t.add(a, "$share/g/jobs/+");
  t.add(a, "jobs/+");
  EXPECT_EQ(names(t, t.match("jobs/1")), (V{"a"}));
  t.remove(a, "jobs/+");  // the shared one still routes there
  EXPECT_EQ(names(t, t.match("jobs/1")), (V{"a"}));
  t.remove(a, "$share/g/jobs/+");
  EXPECT_EQ(names(t, t.match("jobs/1")), V{});
}

TEST(RouteTable, ReplaceAndDropNode) {
  RouteTable t;
  uint16_t a = t.node_index("a"), b = t.node_index("b");
  t.add(a, "old/#");
  t.add(b, "old/#");
  t.replace_node(a, {"new/+", "other"});
  EXPECT_EQ(names(t, t.match("old/1")), (V{"b"}));
  EXPECT_EQ(names(t, t.match("new/1")), (V{"a"}));
  EXPECT_EQ(t.filters_of(a), 2u);
  t.drop_node(a);
  EXPECT_EQ(names(t, t.match("new/1")), V{});
  EXPECT_EQ(t.route_count(), 1u);
  EXPECT_EQ(t.find_node("a"), a);  // the index stays assigned
  EXPECT_EQ(t.find_node("zz"), kNoNode);
}

TEST(RouteTable, NodeIndicesAreBounded) {
  RouteTable t;
  for (size_t i = 0; i < kMaxNodes; ++i) EXPECT_NE(t.node_index("n" + std::to_string(i)), kNoNode);
  EXPECT_EQ(t.node_index("one-too-many"), kNoNode);
  EXPECT_EQ(t.node_index("n3"), 3);
}

// Matching cost follows the topic, not the number of filters: 100k exact filters on other
// topics leave a miss as cheap as with none (a functional check that no scan happens: the
// trie has one child level per distinct first level).
TEST(RouteTable, ManyFilters) {
  RouteTable t;
  uint16_t a = t.node_index("a"), b = t.node_index("b");
  for (int i = 0; i < 100000; ++i) t.add(i % 2 ? a : b, "dev/" + std::to_string(i) + "/state");
  EXPECT_EQ(names(t, t.match("dev/77/state")), (V{"a"}));
  EXPECT_EQ(names(t, t.match("dev/78/state")), (V{"b"}));
  EXPECT_EQ(names(t, t.match("dev/100000/state")), V{});
  EXPECT_EQ(t.route_count(), 100000u);
}

}  // namespace
}  // namespace tcpms::cluster
