// Packet structs. Decoded packets are views into the caller's input buffer (string_view, span,
// Properties): they stay valid only while those bytes do, and the broker copies only what it
// keeps (a retained payload, a session's client id). The same structs are encoder inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "mqtt/cursor_iterator.h"
#include "mqtt/properties.h"
#include "mqtt/reason_codes.h"
#include "mqtt/types.h"

namespace tcpms::mqtt {

struct Will {
  std::string_view topic;
  Bytes payload;
  QoS qos = QoS::k0;
  bool retain = false;
  Properties properties;  // 5.0 Will Properties
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::kV311;
  bool clean_start = true;  // "Clean Session" before 5.0
  std::uint16_t keep_alive_s = 0;
  // May be empty: whether that is allowed depends on clean_start and broker policy
  // ([MQTT-3.1.3-7], [MQTT-3.1.3-8]; 3.1 demands 1..23 bytes). The broker decides.
  std::string_view client_id;
  Properties properties;
  std::optional<Will> will;
  std::optional<std::string_view> username;
  std::optional<Bytes> password;
};

struct Connack {
  bool session_present = false;
  // 5.0 reason code. For 3.x it is mapped to/from ConnectReturnCode (reason_codes.h).
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
};

struct Publish {
  bool dup = false;
  QoS qos = QoS::k0;
  bool retain = false;
  std::string_view topic;  // may be empty in 5.0 when a Topic Alias property is present
  std::uint16_t packet_id = 0;  // 0 for QoS 0 (no identifier on the wire)
  Properties properties;
  Bytes payload;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape; `type` says which.
struct PublishResponse {
  PacketType type = PacketType::kPuback;
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::kSuccess;  // 5.0 only; 3.x always success
  Properties properties;
};

enum class RetainHandling : std::uint8_t { kSendOnSubscribe = 0, kSendIfNew = 1, kDoNotSend = 2 };

// 5.0 §3.8.3.1; for 3.x only max_qos exists on the wire.
struct SubscriptionOptions {
  QoS max_qos = QoS::k0;
  bool no_local = false;
  bool retain_as_published = false;
  RetainHandling retain_handling = RetainHandling::kSendOnSubscribe;
};

struct Subscription {
  std::string_view filter;
  SubscriptionOptions options;
};

namespace detail {
// One SUBSCRIBE entry: Topic Filter then the options byte (3.x: only the QoS bits are set).
inline bool next_subscription(Bytes& rest, Subscription& out) noexcept;
// One UNSUBSCRIBE entry: a Topic Filter.
inline bool next_filter(Bytes& rest, std::string_view& out) noexcept;
}  // namespace detail

// The entries of a decoded SUBSCRIBE / UNSUBSCRIBE payload, iterated in place.
template <class Entry, bool (*Next)(Bytes&, Entry&) noexcept>
class EntryRange {
 public:
  using Iterator = CursorIterator<Entry, Next>;
  EntryRange() = default;
  explicit EntryRange(Bytes wire) noexcept : wire_(wire) {}
  Bytes wire() const noexcept { return wire_; }
  bool empty() const noexcept { return wire_.empty(); }
  Iterator begin() const noexcept { return Iterator(wire_); }
  Iterator end() const noexcept { return Iterator(); }

 private:
  Bytes wire_;
};

using SubscriptionRange = EntryRange<Subscription, &detail::next_subscription>;
using FilterRange = EntryRange<std::string_view, &detail::next_filter>;

struct Subscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  SubscriptionRange subscriptions;  // at least one [MQTT-3.8.3-3]
};

struct Suback {
  std::uint16_t packet_id = 0;
  Properties properties;
  Bytes reason_codes;  // one byte per filter, in order; 3.x: 0x00/0x01/0x02/0x80 only
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  FilterRange filters;  // at least one [MQTT-3.10.3-2]
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  Properties properties;
  Bytes reason_codes;  // 5.0 only; empty for 3.x
};

struct Pingreq {};
struct Pingresp {};

struct Disconnect {
  ReasonCode reason = ReasonCode::kSuccess;  // 5.0 only
  Properties properties;
};

struct Auth {
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
};

using Packet = std::variant<Connect, Connack, Publish, PublishResponse, Subscribe, Suback,
                            Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

// Options byte <-> struct (5.0 layout: bits 0-1 QoS, 2 No Local, 3 Retain As Published, 4-5
// Retain Handling, 6-7 reserved).
constexpr std::uint8_t options_byte(const SubscriptionOptions& o) noexcept {
  return static_cast<std::uint8_t>(static_cast<unsigned>(o.max_qos) | (o.no_local ? 0x04u : 0u) |
                                   (o.retain_as_published ? 0x08u : 0u) |
                                   (static_cast<unsigned>(o.retain_handling) << 4));
}
constexpr SubscriptionOptions options_from_byte(std::uint8_t b) noexcept {
  return {static_cast<QoS>(b & 0x03u), (b & 0x04u) != 0, (b & 0x08u) != 0,
          static_cast<RetainHandling>((b >> 4) & 0x03u)};
}

namespace detail {
inline bool next_subscription(Bytes& rest, Subscription& out) noexcept {
  Bytes filter;
  if (!split_prefixed(rest, 1, filter)) return false;
  out.filter = as_chars(filter);
  out.options = options_from_byte(static_cast<std::uint8_t>(rest[2 + filter.size()]));
  rest = rest.subspan(3 + filter.size());
  return true;
}
inline bool next_filter(Bytes& rest, std::string_view& out) noexcept {
  Bytes filter;
  if (!split_prefixed(rest, 0, filter)) return false;
  out = as_chars(filter);
  rest = rest.subspan(2 + filter.size());
  return true;
}
}  // namespace detail

}  // namespace tcpms::mqtt
