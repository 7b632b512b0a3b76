// Topic Names and Filters: 3.1.1 §4.7, 5.0 §4.7 and §4.8.2 (shared subscriptions).
#include <gtest/gtest.h>

#include <string>

#include "mqtt/topic.h"

namespace tcpms::mqtt {
namespace {

TEST(TopicName, AcceptsPlainNames) {
  EXPECT_EQ(validate_topic_name("sport/tennis/player1"), TopicError::kOk);
  EXPECT_EQ(validate_topic_name("/"), TopicError::kOk);          // two empty levels
  EXPECT_EQ(validate_topic_name("/finance"), TopicError::kOk);
  EXPECT_EQ(validate_topic_name("$SYS/broker/uptime"), TopicError::kOk);
  EXPECT_EQ(validate_topic_name("a b"), TopicError::kOk);        // spaces are allowed
}

TEST(TopicName, RejectsWildcards) {
  // [MQTT-4.7.1-1], [MQTT-3.3.2-2]
  EXPECT_EQ(validate_topic_name("sport/+"), TopicError::kWildcardInName);
  EXPECT_EQ(validate_topic_name("sport/#"), TopicError::kWildcardInName);
  EXPECT_EQ(validate_topic_name("a+b"), TopicError::kWildcardInName);
}

TEST(TopicName, RejectsEmptyNulAndTooLong) {
  EXPECT_EQ(validate_topic_name(""), TopicError::kEmpty);  // [MQTT-4.7.3-1]
  EXPECT_EQ(validate_topic_name(std::string_view("a\0b", 3)), TopicError::kNullCharacter);  // [MQTT-4.7.3-2]
  EXPECT_EQ(validate_topic_name(std::string(65536, 'a')), TopicError::kTooLong);  // [MQTT-4.7.3-3]
  EXPECT_EQ(validate_topic_name(std::string(65535, 'a')), TopicError::kOk);
}

TEST(TopicFilter, AcceptsSpecExamples) {
  for (std::string_view f : {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#",
                             "sport/+/player1", "/+", "+/+", "sport/tennis/#", "$SYS/#"}) {
    EXPECT_EQ(validate_topic_filter(f), TopicError::kOk) << f;
  }
}

TEST(TopicFilter, RejectsMisplacedMultiLevelWildcard) {
  // [MQTT-4.7.1-2]: "#" alone, last.
  for (std::string_view f : {"sport/tennis#", "sport/tennis/#/ranking", "#/", "a/#b", "##"}) {
    EXPECT_EQ(validate_topic_filter(f), TopicError::kMisplacedMultiLevel) << f;
  }
}

TEST(TopicFilter, RejectsMisplacedSingleLevelWildcard) {
  // [MQTT-4.7.1-3]: "+" fills a whole level.
  for (std::string_view f : {"sport+", "sport/+tennis", "+a", "a/b+", "++"}) {
    EXPECT_EQ(validate_topic_filter(f), TopicError::kMisplacedSingleLevel) << f;
  }
}

TEST(TopicFilter, RejectsEmptyAndNul) {
  EXPECT_EQ(validate_topic_filter(""), TopicError::kEmpty);
  EXPECT_EQ(validate_topic_filter(std::string_view("a/\0", 3)), TopicError::kNullCharacter);
}

TEST(TopicLevels, MaxLevelsCountsSeparatorsPlusOne) {
  EXPECT_EQ(validate_topic_name("a/b/c", 3), TopicError::kOk);
  EXPECT_EQ(validate_topic_name("a/b/c/d", 3), TopicError::kTooManyLevels);
  EXPECT_EQ(validate_topic_filter("a/+/#", 3), TopicError::kOk);
  EXPECT_EQ(validate_topic_filter("a/+/c/#", 3), TopicError::kTooManyLevels);
  EXPECT_EQ(validate_topic_name("a/b/c/d"), TopicError::kOk);  // 0 = unlimited
}

TEST(SharedSubscription, ParsesShareNameAndFilter) {
  const auto s = parse_shared_subscription("$share/group1/sport/+/score");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->share_name, "group1");
  EXPECT_EQ(s->filter, "sport/+/score");
  EXPECT_EQ(validate_topic_filter("$share/g/#"), TopicError::kOk);
}

TEST(SharedSubscription, RejectsBadShareNames) {
  // [MQTT-4.8.2-1]: ShareName non-empty, without "/", "+", "#"; [MQTT-4.8.2-2]: then "/" and a filter.
  for (std::string_view f : {"$share/", "$share//a", "$share/g", "$share/g/", "$share/g+/a",
                             "$share/#/a", "$share/+/a"}) {
    EXPECT_EQ(validate_topic_filter(f), TopicError::kBadSharedSubscription) << f;
    EXPECT_FALSE(parse_shared_subscription(f)) << f;
  }
  EXPECT_EQ(validate_topic_filter("$share/g/a#"), TopicError::kMisplacedMultiLevel);
  EXPECT_FALSE(is_shared_subscription("$shared/g/a"));
}

struct MatchCase {
  std::string_view filter, name;
  bool match;
};

TEST(TopicMatches, SpecExamples) {
  // 3.1.1 §4.7.1.2, §4.7.1.3, §4.7.2 non-normative examples.
  const MatchCase cases[] = {
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},
      {"#", "sport/tennis", true},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"#", "$SYS/monitor/Clients", false},       // [MQTT-4.7.2-1]
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
  };
  for (const MatchCase& c : cases) {
    EXPECT_EQ(topic_matches(c.filter, c.name), c.match) << c.filter << " vs " << c.name;
  }
}

TEST(TopicMatches, ExactAndNoNormalisation) {
  // [MQTT-4.7.3-4]: case-sensitive, byte-exact.
  EXPECT_TRUE(topic_matches("a/b", "a/b"));
  EXPECT_FALSE(topic_matches("a/b", "A/b"));
  EXPECT_FALSE(topic_matches("a/b", "a/b/"));
  EXPECT_FALSE(topic_matches("a/b/", "a/b"));
  EXPECT_FALSE(topic_matches("a/b", "a"));
  EXPECT_FALSE(topic_matches("a", "a/b"));
  EXPECT_TRUE(topic_matches("a/+/c", "a//c"));
  EXPECT_TRUE(topic_matches("a/#", "a/"));
  EXPECT_FALSE(topic_matches("a/b/#", "a"));
  EXPECT_TRUE(topic_matches("+", "a"));
  EXPECT_TRUE(topic_matches("+/#", "a"));
}

}  // namespace
}  // namespace tcpms::mqtt
