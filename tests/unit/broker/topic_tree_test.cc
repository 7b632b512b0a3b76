// TopicTree: matching (3.1.1 §4.7 examples), $-topics, replace, unsubscribe, pruning, and
// agreement with the codec's reference matcher mqtt::topic_matches.
#include "broker/topic_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mqtt/topic.h"

namespace tcpms::broker {
namespace {

using mqtt::QoS;

struct Fixture : ::testing::Test {
  TopicTree tree;
  std::vector<std::unique_ptr<Session>> sessions;
  Session* session(const std::string& id) {
    sessions.push_back(std::make_unique<Session>(id));
    return sessions.back().get();
  }
  std::multiset<std::string> match(std::string_view topic) {
    std::multiset<std::string> out;
    tree.match(topic, [&](Session* s, QoS q) {
      out.insert(std::string(s->client_id()) + ":" + std::to_string(static_cast<int>(q)));
    });
    return out;
  }
  void TearDown() override {
    for (auto& s : sessions)
      while (!s->subs.empty()) tree.remove(s.get(), &s->subs[s->subs.size() - 1]);
    EXPECT_EQ(tree.node_count(), 0u) << "every node is pruned once its last subscriber left";
  }
};

TEST_F(Fixture, SpecExamplesMultiLevel) {
  // 3.1.1 §4.7.1.2: "sport/tennis/player1/#" matches all three.
  Session* a = session("a");
  tree.subscribe("sport/tennis/player1/#", a, QoS::k1);
  EXPECT_EQ(match("sport/tennis/player1"), (std::multiset<std::string>{"a:1"}));
  EXPECT_EQ(match("sport/tennis/player1/ranking"), (std::multiset<std::string>{"a:1"}));
  EXPECT_EQ(match("sport/tennis/player1/score/wimbledon"), (std::multiset<std::string>{"a:1"}));
  EXPECT_TRUE(match("sport/tennis/player2").empty());
  // "sport/#" also matches "sport" [MQTT-4.7.1-2].
  Session* b = session("b");
  tree.subscribe("sport/#", b, QoS::k0);
  EXPECT_EQ(match("sport"), (std::multiset<std::string>{"b:0"}));
}

TEST_F(Fixture, SpecExamplesSingleLevel) {
  // 3.1.1 §4.7.1.3.
  Session* a = session("a");
  tree.subscribe("sport/tennis/+", a, QoS::k0);
  EXPECT_EQ(match("sport/tennis/player1").size(), 1u);
  EXPECT_EQ(match("sport/tennis/player2").size(), 1u);
  EXPECT_TRUE(match("sport/tennis/player1/ranking").empty());
  Session* b = session("b");
  tree.subscribe("sport/+", b, QoS::k0);
  EXPECT_TRUE(match("sport").empty());
  EXPECT_EQ(match("sport/").size(), 1u);  // an empty level is a level
  Session* c = session("c");
  tree.subscribe("+/+", c, QoS::k0);
  tree.subscribe("/+", c, QoS::k1);
  EXPECT_EQ(match("/finance"), (std::multiset<std::string>{"c:0", "c:1"}));
  Session* d = session("d");
  tree.subscribe("+", d, QoS::k0);
  EXPECT_TRUE(match("/finance").count("d:0") == 0);
}

TEST_F(Fixture, DollarTopicsNotMatchedByLeadingWildcards) {
  // [MQTT-4.7.2-1]
  Session* a = session("a");
  tree.subscribe("#", a, QoS::k0);
  tree.subscribe("+/monitor/Clients", a, QoS::k0);
  Session* b = session("b");
  tree.subscribe("$SYS/#", b, QoS::k0);
  tree.subscribe("$SYS/monitor/+", b, QoS::k1);
  EXPECT_EQ(match("$SYS/monitor/Clients"), (std::multiset<std::string>{"b:0", "b:1"}));
  EXPECT_EQ(match("SYS/monitor/Clients"), (std::multiset<std::string>{"a:0", "a:0"}));
  // A '$' deeper than the first level is an ordinary character.
  EXPECT_EQ(match("a/$x").size(), 1u);
}

TEST_F(Fixture, ResubscribeReplacesQos) {
  // [MQTT-3.8.4-3]: same filter again replaces, it does not add.
  Session* a = session("a");
  auto r1 = tree.subscribe("x/y", a, QoS::k0);
  EXPECT_FALSE(r1.replaced);
  EXPECT_TRUE(r1.first_at_node);
  auto r2 = tree.subscribe("x/y", a, QoS::k2);
  EXPECT_TRUE(r2.replaced);
  EXPECT_EQ(tree.subscription_count(), 1u);
  EXPECT_EQ(match("x/y"), (std::multiset<std::string>{"a:2"}));
}

TEST_F(Fixture, UnsubscribeKeepsOtherSubscribersIndexesRight) {
  std::vector<Session*> s;
  for (int i = 0; i < 50; ++i) {
    s.push_back(session("c" + std::to_string(i)));
    tree.subscribe("shared/topic", s.back(), QoS::k1);
    tree.subscribe("own/" + std::to_string(i), s.back(), QoS::k0);
  }
  // Remove from the middle, front and back; every remaining record must still point at its
  // own entry (swap-remove moved entries around).
  for (int i : {25, 0, 49, 10, 11}) {
    bool last = true;
    EXPECT_TRUE(tree.unsubscribe("shared/topic", s[i], &last));
    EXPECT_FALSE(last);
    EXPECT_FALSE(tree.unsubscribe("shared/topic", s[i]));
  }
  EXPECT_EQ(match("shared/topic").size(), 45u);
  for (Session* x : s) {
    for (SubRecord& r : x->subs) EXPECT_EQ(r.node->entries()[r.index].session(), x);
  }
  EXPECT_EQ(tree.filter_of(s[3]->subs[0].node), "shared/topic");
}

TEST_F(Fixture, PruneOnLastUnsubscribe) {
  Session* a = session("a");
  tree.subscribe("a/b/c/d", a, QoS::k0);
  tree.subscribe("a/b", a, QoS::k0);
  EXPECT_EQ(tree.node_count(), 4u);
  bool last = false;
  EXPECT_TRUE(tree.unsubscribe("a/b/c/d", a, &last));
  EXPECT_TRUE(last);
  EXPECT_EQ(tree.node_count(), 2u);
  EXPECT_EQ(tree.find("a/b/c"), nullptr);
}

TEST_F(Fixture, ManyNodesGrowTheEdgeTable) {
  Session* a = session("a");
  for (int i = 0; i < 5000; ++i) tree.subscribe("dev/" + std::to_string(i) + "/cmd", a, QoS::k0);
  EXPECT_EQ(tree.node_count(), 1u + 5000u * 2);
  EXPECT_EQ(match("dev/4321/cmd").size(), 1u);
  EXPECT_TRUE(match("dev/5001/cmd").empty());
  for (int i = 0; i < 5000; i += 2) EXPECT_TRUE(tree.unsubscribe("dev/" + std::to_string(i) + "/cmd", a));
  for (int i = 0; i < 5000; ++i)
    EXPECT_EQ(match("dev/" + std::to_string(i) + "/cmd").size(), i % 2 ? 1u : 0u) << i;
}

TEST_F(Fixture, AgreesWithReferenceMatcher) {
  const std::vector<std::string> levels = {"a", "b", "$c", "", "+", "#"};
  std::mt19937 rng(7);
  std::vector<std::string> filters;
  for (int i = 0; i < 300; ++i) {
    int n = 1 + static_cast<int>(rng() % 4);
    std::string f;
    for (int j = 0; j < n; ++j) {
      std::string l = levels[rng() % levels.size()];
      if (l == "#" && j != n - 1) l = "+";
      f += (j ? "/" : "") + l;
    }
    if (mqtt::validate_topic_filter(f) == mqtt::TopicError::kOk) filters.push_back(f);
  }
  std::sort(filters.begin(), filters.end());
  filters.erase(std::unique(filters.begin(), filters.end()), filters.end());
  std::vector<Session*> subs;
  for (size_t i = 0; i < filters.size(); ++i) {
    subs.push_back(session(filters[i]));
    tree.subscribe(filters[i], subs.back(), QoS::k0);
  }
  for (int i = 0; i < 500; ++i) {
    int n = 1 + static_cast<int>(rng() % 4);
    std::string t;
    for (int j = 0; j < n; ++j) {
      std::string l = levels[rng() % 4];
      t += (j ? "/" : "") + l;
    }
    std::multiset<std::string> want;
    for (const auto& f : filters)
      if (mqtt::topic_matches(f, t)) want.insert(f + ":0");
    EXPECT_EQ(match(t), want) << "topic " << t;
  }
}

TEST(TopicTreeLayout, CompactEntries) {
  EXPECT_EQ(sizeof(SubEntry), 8u);
  EXPECT_LE(sizeof(TopicNode), 56u);
  EXPECT_LE(sizeof(Session), 104u);
}

}  // namespace
}  // namespace tcpms::broker

namespace tcpms::broker {
namespace {

TEST(TopicSummary, SkipsLoopsThatCannotMatch) {
  TopicTree tree;
  Session a("a"), b("b");
  EXPECT_FALSE(tree.summary().may_match("devices/1/cmd"));
  tree.subscribe("devices/1/cmd", &a, mqtt::QoS::k0);
  EXPECT_TRUE(tree.summary().may_match("devices/1/cmd"));
  EXPECT_TRUE(tree.summary().may_match("devices/1"));  // same first two levels: may
  // Other devices: skipped (up to Bloom false positives, none for these few).
  int hits = 0;
  for (int i = 2; i < 200; ++i) hits += tree.summary().may_match("devices/" + std::to_string(i) + "/cmd");
  EXPECT_LT(hits, 5);
  tree.subscribe("sensors/+/temp", &b, mqtt::QoS::k0);
  EXPECT_TRUE(tree.summary().may_match("sensors/x/temp"));
  EXPECT_TRUE(tree.summary().may_match("sensors"));
  tree.subscribe("#", &b, mqtt::QoS::k0);
  EXPECT_TRUE(tree.summary().may_match("anything/at/all"));
  EXPECT_FALSE(tree.summary().may_match("$SYS/broker/uptime"));  // [MQTT-4.7.2-1]
  tree.unsubscribe("#", &b);
  EXPECT_FALSE(tree.summary().may_match("anything/at/all"));
  tree.unsubscribe("devices/1/cmd", &a);
  EXPECT_FALSE(tree.summary().may_match("devices/1/cmd"));
  tree.unsubscribe("sensors/+/temp", &b);
  EXPECT_FALSE(tree.summary().may_match("sensors/x/temp"));
}

TEST(TopicSummary, NeverSkipsAMatch) {
  // Whatever the filters, a topic the tree matches is never skipped.
  TopicTree tree;
  std::vector<std::unique_ptr<Session>> ss;
  const char* filters[] = {"a", "a/#", "a/+", "a/b", "a/b/c", "+/b", "$SYS/#", "$x/y", "/", "/+",
                           "c/+/d/#"};
  for (const char* f : filters) {
    ss.push_back(std::make_unique<Session>(f));
    tree.subscribe(f, ss.back().get(), mqtt::QoS::k0);
  }
  for (const char* t : {"a", "a/b", "a/b/c", "a/q", "z/b", "$SYS/x", "$x/y", "/", "/q", "c/1/d",
                        "c/1/d/e/f", "q"}) {
    bool matched = false;
    tree.match(t, [&](Session*, mqtt::QoS) { matched = true; });
    if (matched) EXPECT_TRUE(tree.summary().may_match(t)) << t;
  }
  for (auto& s : ss)
    while (!s->subs.empty()) tree.remove(s.get(), &s->subs[0]);
}

}  // namespace
}  // namespace tcpms::broker
