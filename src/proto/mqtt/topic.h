// Topic Names and Topic Filters (3.1.1 §4.7, 5.0 §4.7, shared subscriptions 5.0 §4.8.2).
//
// Examples ("/" separates levels, "+" is one whole level, "#" is the last level and its parent):
//   filter "sport/tennis/#" matches "sport/tennis", "sport/tennis/player1/ranking"
//   filter "sport/+/player1" matches "sport/tennis/player1", not "sport/player1"
//   filter "+/monitor" matches "/monitor" (an empty level is a level)
//   filter "#" does not match "$SYS/uptime" [MQTT-4.7.2-1]; "$SYS/#" does
//   invalid filters: "sport/tennis#", "sport/#/ranking", "sport+", "" ; invalid names: "a/+", ""
//
// These checks are structural only: UTF-8 well-formedness is checked once by the decoder when
// the string is read (see utf8.h); a standalone caller (ACL config) should run both.
// Pure functions: callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tcpms::mqtt {

enum class TopicError : std::uint8_t {
  kOk,
  kEmpty,                 // [MQTT-4.7.3-1]
  kTooLong,               // > 65535 bytes [MQTT-4.7.3-3]
  kNullCharacter,         // [MQTT-4.7.3-2]
  kWildcardInName,        // [MQTT-4.7.1-1], [MQTT-3.3.2-2]
  kMisplacedMultiLevel,   // "#" not alone in the last level [MQTT-4.7.1-2]
  kMisplacedSingleLevel,  // "+" not alone in its level [MQTT-4.7.1-3]
  kTooManyLevels,         // over the caller's max_levels (broker policy, not spec)
  kBadSharedSubscription, // "$share/" without a valid ShareName and filter [MQTT-4.8.2-1/2]
};

const char* topic_error_name(TopicError e) noexcept;

// `max_levels` == 0 means no limit. A level count is separators + 1 ("a/b" has 2).
TopicError validate_topic_name(std::string_view name, std::uint32_t max_levels = 0) noexcept;
TopicError validate_topic_filter(std::string_view filter, std::uint32_t max_levels = 0) noexcept;

// "$share/{ShareName}/{filter}" (5.0 §4.8.2). The codec recognises the prefix in every protocol
// version, as brokers do in practice; whether to honour it for 3.1.1 is broker policy.
inline constexpr std::string_view kSharePrefix = "$share/";
inline bool is_shared_subscription(std::string_view filter) noexcept {
  return filter.starts_with(kSharePrefix);
}
struct SharedSubscription {
  std::string_view share_name;
  std::string_view filter;
};
// Splits a shared subscription; nullopt if `filter` is not one or is malformed.
std::optional<SharedSubscription> parse_shared_subscription(std::string_view filter) noexcept;

// Reference matcher: does `filter` (valid, not shared) match `name` (valid)? Byte-exact, no
// normalisation [MQTT-4.7.3-4]. The broker's topic tree must agree with this; tests and ACLs
// use it directly.
bool topic_matches(std::string_view filter, std::string_view name) noexcept;

}  // namespace tcpms::mqtt
