// MQTT 5.0 properties (5.0 §2.2.2). A decoded packet keeps its properties as a validated view of
// the wire bytes (`Properties`): nothing is copied or allocated, and the broker asks only for
// what it uses (find) or walks them all (range-for). The same view is what encoders write, so a
// broker can forward a PUBLISH's properties untouched; build new ones with PropertyBuilder.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "mqtt/cursor_iterator.h"
#include "mqtt/result.h"
#include "mqtt/types.h"

namespace tcpms::mqtt {

enum class PropertyId : std::uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQoS = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

enum class PropertyType : std::uint8_t {
  kInvalid,  // not a 5.0 property identifier
  kByte,
  kTwoByte,
  kFourByte,
  kVarInt,
  kUtf8,
  kBinary,
  kUtf8Pair,
};

PropertyType property_type(std::uint8_t id) noexcept;

// Where a property list sits; each property is allowed only in some (5.0 §2.2.2.2 table).
enum class PropertyContext : std::uint8_t {
  kConnect, kConnack, kPublish, kWill, kPuback, kPubrec, kPubrel, kPubcomp,
  kSubscribe, kSuback, kUnsubscribe, kUnsuback, kDisconnect, kAuth,
};

// One decoded property. Integers of any width are in `number`; strings and binary data are
// views: `text` (UTF-8 string, or the name of a User Property), `text2` (User Property value),
// `binary` (Correlation Data, Authentication Data).
struct Property {
  PropertyId id{};
  std::uint32_t number = 0;
  std::string_view text;
  std::string_view text2;
  Bytes binary;
};

// A view of property bytes (without the Property Length prefix). Iteration is memory-safe even
// on bytes that never went through decode_properties; for decoded packets every entry is valid.
class Properties {
 public:
  Properties() = default;
  explicit Properties(Bytes wire) noexcept : wire_(wire) {}

  Bytes wire() const noexcept { return wire_; }
  bool empty() const noexcept { return wire_.empty(); }
  std::size_t wire_size() const noexcept { return wire_.size(); }

  // Defined in properties.cc; stops at the end or at the first entry it cannot parse.
  static bool next(Bytes& rest, Property& out) noexcept;
  using Iterator = CursorIterator<Property, &Properties::next>;

  Iterator begin() const noexcept { return Iterator(wire_); }
  Iterator end() const noexcept { return Iterator(); }

  // First property with this id. For User Property and Subscription Identifier (which may
  // repeat) iterate instead.
  std::optional<Property> find(PropertyId id) const noexcept;
  std::optional<std::uint32_t> number(PropertyId id) const noexcept;

 private:
  Bytes wire_;
};

namespace detail {
class ByteReader;
}

// Reads a Property Length and the properties after it, checking every rule of 5.0 §2.2.2 and
// the per-property text of §3: known identifier (else Malformed Packet), allowed in `context`,
// at most once unless the spec allows repetition, value ranges (e.g. Receive Maximum != 0,
// Topic Alias != 0, boolean bytes 0/1), UTF-8 strings and pairs [MQTT-1.5.7-1], and
// Authentication Data only with an Authentication Method. Violations of the value rules are
// Protocol Errors, as the spec names them; framing and encoding errors are Malformed Packet.
Decoded<Properties> decode_properties(detail::ByteReader& in, PropertyContext context) noexcept;
// The same checks on a property list without its length prefix (properties a broker keeps
// and passes between its processes).
Decoded<Properties> decode_property_list(Bytes wire, PropertyContext context) noexcept;

}  // namespace tcpms::mqtt
