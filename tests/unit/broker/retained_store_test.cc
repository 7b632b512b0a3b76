// RetainedStore: set / replace / clear [MQTT-3.3.1-5], [MQTT-3.3.1-10], [MQTT-3.3.1-11] and
// wildcard matching with the $ rule [MQTT-4.7.2-1].
#include "broker/retained_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace tcpms::broker {
namespace {

SharedBytes B(std::string_view s) { return SharedBytes::copy_of(as_bytes(s)); }

std::vector<std::string> match(const RetainedStore& st, std::string_view filter) {
  std::vector<RetainedMessage> out;
  st.match(filter, out);
  std::vector<std::string> r;
  for (auto& m : out) r.push_back(std::string(as_chars(m.topic.view())) + "=" + std::string(as_chars(m.payload.view())));
  std::sort(r.begin(), r.end());
  return r;
}

TEST(RetainedStore, SetReplaceClear) {
  RetainedStore st;
  st.set(B("a/b"), B("1"), mqtt::QoS::k1);
  st.set(B("a/b"), B("2"), mqtt::QoS::k0);
  EXPECT_EQ(st.size(), 1u);
  EXPECT_EQ(match(st, "a/b"), (std::vector<std::string>{"a/b=2"}));
  st.set(B("a/b"), SharedBytes(), mqtt::QoS::k0);  // zero bytes clears, is not stored
  EXPECT_EQ(st.size(), 0u);
  EXPECT_TRUE(match(st, "#").empty());
  st.set(B("a/c"), SharedBytes(), mqtt::QoS::k0);  // clearing nothing is harmless
  EXPECT_EQ(st.size(), 0u);
}

TEST(RetainedStore, WildcardsAndDollar) {
  RetainedStore st;
  for (auto t : {"a", "a/b", "a/b/c", "a/x/c", "b", "$SYS/x", "/lead"}) st.set(B(t), B("v"), mqtt::QoS::k0);
  EXPECT_EQ(match(st, "a/#"), (std::vector<std::string>{"a/b/c=v", "a/b=v", "a/x/c=v", "a=v"}));
  EXPECT_EQ(match(st, "a/+/c"), (std::vector<std::string>{"a/b/c=v", "a/x/c=v"}));
  EXPECT_EQ(match(st, "+"), (std::vector<std::string>{"a=v", "b=v"}));
  EXPECT_EQ(match(st, "#").size(), 6u);  // all but $SYS/x
  EXPECT_EQ(match(st, "$SYS/#"), (std::vector<std::string>{"$SYS/x=v"}));
  EXPECT_EQ(match(st, "+/lead"), (std::vector<std::string>{"/lead=v"}));
  EXPECT_EQ(st.payload_bytes(), 7u);
}

TEST(RetainedStore, ClearPrunesButKeepsSiblings) {
  RetainedStore st;
  st.set(B("x/y/z"), B("1"), mqtt::QoS::k0);
  st.set(B("x/y"), B("2"), mqtt::QoS::k0);
  st.set(B("x/y/z"), SharedBytes(), mqtt::QoS::k0);
  EXPECT_EQ(match(st, "x/#"), (std::vector<std::string>{"x/y=2"}));
}

}  // namespace
}  // namespace tcpms::broker
