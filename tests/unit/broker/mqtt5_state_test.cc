// The broker's MQTT 5.0 state: subscription options in the topic tree (No Local, Retain As
// Published, flagged per entry and kept across swap-removes), message expiry arithmetic, and
// properties kept with retained messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "broker/message_props.h"
#include "broker/retained_store.h"
#include "broker/topic_tree.h"

namespace tcpms::broker {
namespace {

using mqtt::QoS;

struct Seen {
  Session* s;
  QoS qos;
  uint8_t options;  // 0xFF: no record passed
  uint32_t subscription_id;
};

std::vector<Seen> match(TopicTree& tree, std::string_view topic) {
  std::vector<Seen> out;
  tree.match(topic, [&](Session* s, QoS q, const SubRecord* rec) {
    out.push_back({s, q, rec ? static_cast<uint8_t>(rec->options) : uint8_t{0xFF},
                   rec ? uint32_t{rec->subscription_id} : 0u});
  });
  return out;
}

TEST(Mqtt5State, SubscriptionOptionsReachTheMatcherOnlyWhenSet) {
  TopicTree tree;
  Session plain("plain"), nolocal("nolocal");
  tree.subscribe("a/b", &plain, QoS::k1);
  tree.subscribe("a/+", &nolocal, QoS::k2, kSubNoLocal | kSubRetainAsPublished);
  auto seen = match(tree, "a/b");
  ASSERT_EQ(seen.size(), 2u);
  for (const Seen& x : seen) {
    if (x.s == &plain) {
      EXPECT_EQ(x.options, 0xFF);  // no options: no record lookup
      EXPECT_EQ(x.qos, QoS::k1);
    } else {
      EXPECT_EQ(x.s, &nolocal);
      EXPECT_EQ(x.options, kSubNoLocal | kSubRetainAsPublished);
      EXPECT_EQ(x.qos, QoS::k2);  // the flag bit does not leak into the QoS
    }
  }
  // The two-argument visitor still works and sees the clean pointer.
  int n = 0;
  tree.match("a/b", [&](Session* s, QoS) {
    EXPECT_TRUE(s == &plain || s == &nolocal);
    ++n;
  });
  EXPECT_EQ(n, 2);
  // Replacing the subscription replaces its options [MQTT-3.8.4-3].
  EXPECT_TRUE(tree.subscribe("a/+", &nolocal, QoS::k0, 0).replaced);
  for (const Seen& x : match(tree, "a/b")) EXPECT_EQ(x.options, 0xFF);
  while (!plain.subs.empty()) tree.remove(&plain, &plain.subs[0]);
  while (!nolocal.subs.empty()) tree.remove(&nolocal, &nolocal.subs[0]);
  EXPECT_EQ(tree.node_count(), 0u);
}

TEST(Mqtt5State, OptionsSurviveSwapRemove) {
  TopicTree tree;
  std::vector<std::unique_ptr<Session>> ss;
  for (int i = 0; i < 4; ++i) {
    ss.push_back(std::make_unique<Session>("s" + std::to_string(i)));
    tree.subscribe("t", ss.back().get(), QoS::k1, i == 3 ? kSubNoLocal : 0);
  }
  // Removing the first entry moves the last (the one with options) into its slot.
  tree.unsubscribe("t", ss[0].get());
  bool found = false;
  for (const Seen& x : match(tree, "t")) {
    if (x.s == ss[3].get()) {
      found = true;
      EXPECT_EQ(x.options, kSubNoLocal);
    } else {
      EXPECT_EQ(x.options, 0xFF);
    }
  }
  EXPECT_TRUE(found);
  for (auto& s : ss)
    while (!s->subs.empty()) tree.remove(s.get(), &s->subs[0]);
}

TEST(Mqtt5State, SubscriptionIdentifiersAreKeptPerSubscription) {
  TopicTree tree;
  Session s("s");
  static_assert(sizeof(SubRecord) == 16);
  tree.subscribe("x/#", &s, QoS::k1, 0, 268'435'455);  // the largest id fits the record
  tree.subscribe("x/+", &s, QoS::k0, kSubNoLocal, 7);
  tree.subscribe("x/y", &s, QoS::k2);
  std::vector<uint32_t> ids;
  for (const Seen& x : match(tree, "x/y"))
    if (x.options != 0xFF) ids.push_back(x.subscription_id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint32_t>{7, 268'435'455}));
  // Replaced without an id: the id goes, and with no options the entry is plain again.
  tree.subscribe("x/#", &s, QoS::k1, 0, 0);
  ids.clear();
  for (const Seen& x : match(tree, "x/y"))
    if (x.options != 0xFF) ids.push_back(x.subscription_id);
  EXPECT_EQ(ids, (std::vector<uint32_t>{7}));
  while (!s.subs.empty()) tree.remove(&s, &s.subs[0]);
}

TEST(Mqtt5State, ExpiryLeftRoundsUpAndStopsAtZero) {
  EXPECT_EQ(expiry_left_s(10'000, 10'000), 0u);
  EXPECT_EQ(expiry_left_s(10'000, 11'000), 0u);
  EXPECT_EQ(expiry_left_s(10'000, 9'999), 1u);
  EXPECT_EQ(expiry_left_s(10'000, 9'000), 1u);
  EXPECT_EQ(expiry_left_s(10'000, 8'999), 2u);
  EXPECT_EQ(expiry_left_s(60'000, 0), 60u);
}

TEST(Mqtt5State, RetainedMessagesKeepTheirProperties) {
  RetainedStore store;
  MessageProps props;
  const std::byte wire[] = {std::byte{0x01}, std::byte{0x01}};  // Payload Format Indicator 1
  props.wire = SharedBytes::copy_of(ByteView(wire, 2));
  props.expires_at_ms = 1234;
  store.set(SharedBytes::copy_of(as_bytes(std::string_view("r/t"))),
            SharedBytes::copy_of(as_bytes(std::string_view("v"))), QoS::k1, props);
  std::vector<RetainedMessage> out;
  store.match("r/#", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].props.expires_at_ms, 1234u);
  ASSERT_EQ(out[0].props.wire.size(), 2u);
  EXPECT_EQ(out[0].props.wire.view()[0], std::byte{0x01});
  // Replaced by a publish without properties: none are left over.
  store.set(SharedBytes::copy_of(as_bytes(std::string_view("r/t"))),
            SharedBytes::copy_of(as_bytes(std::string_view("w"))), QoS::k0);
  out.clear();
  store.match("r/t", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].props.empty());
}

}  // namespace
}  // namespace tcpms::broker
