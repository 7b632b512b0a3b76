#include "mqtt/properties.h"

#include <array>

#include "mqtt/byte_reader.h"
#include "mqtt/utf8.h"

namespace tcpms::mqtt {
namespace {

using Ctx = PropertyContext;

constexpr std::uint16_t bit(Ctx c) noexcept { return static_cast<std::uint16_t>(1u << static_cast<unsigned>(c)); }

struct Rule {
  PropertyType type = PropertyType::kInvalid;
  std::uint16_t allowed = 0;  // bit per PropertyContext
};

constexpr std::uint16_t kMessageCtx = bit(Ctx::kPublish) | bit(Ctx::kWill);
constexpr std::uint16_t kReasonStringCtx =
    bit(Ctx::kConnack) | bit(Ctx::kPuback) | bit(Ctx::kPubrec) | bit(Ctx::kPubrel) |
    bit(Ctx::kPubcomp) | bit(Ctx::kSuback) | bit(Ctx::kUnsuback) | bit(Ctx::kDisconnect) |
    bit(Ctx::kAuth);
constexpr std::uint16_t kAllCtx = 0x3FFF;

// The 5.0 §2.2.2.2 table: identifier -> data type and the packets it may appear in.
constexpr std::array<Rule, 0x2B> make_rules() {
  std::array<Rule, 0x2B> r{};
  using T = PropertyType;
  r[0x01] = {T::kByte, kMessageCtx};
  r[0x02] = {T::kFourByte, kMessageCtx};
  r[0x03] = {T::kUtf8, kMessageCtx};
  r[0x08] = {T::kUtf8, kMessageCtx};
  r[0x09] = {T::kBinary, kMessageCtx};
  r[0x0B] = {T::kVarInt, static_cast<std::uint16_t>(bit(Ctx::kPublish) | bit(Ctx::kSubscribe))};
  r[0x11] = {T::kFourByte, static_cast<std::uint16_t>(bit(Ctx::kConnect) | bit(Ctx::kConnack) | bit(Ctx::kDisconnect))};
  r[0x12] = {T::kUtf8, bit(Ctx::kConnack)};
  r[0x13] = {T::kTwoByte, bit(Ctx::kConnack)};
  r[0x15] = {T::kUtf8, static_cast<std::uint16_t>(bit(Ctx::kConnect) | bit(Ctx::kConnack) | bit(Ctx::kAuth))};
  r[0x16] = {T::kBinary, static_cast<std::uint16_t>(bit(Ctx::kConnect) | bit(Ctx::kConnack) | bit(Ctx::kAuth))};
  r[0x17] = {T::kByte, bit(Ctx::kConnect)};
  r[0x18] = {T::kFourByte, bit(Ctx::kWill)};
  r[0x19] = {T::kByte, bit(Ctx::kConnect)};
  r[0x1A] = {T::kUtf8, bit(Ctx::kConnack)};
  r[0x1C] = {T::kUtf8, static_cast<std::uint16_t>(bit(Ctx::kConnack) | bit(Ctx::kDisconnect))};
  r[0x1F] = {T::kUtf8, kReasonStringCtx};
  r[0x21] = {T::kTwoByte, static_cast<std::uint16_t>(bit(Ctx::kConnect) | bit(Ctx::kConnack))};
  r[0x22] = {T::kTwoByte, static_cast<std::uint16_t>(bit(Ctx::kConnect) | bit(Ctx::kConnack))};
  r[0x23] = {T::kTwoByte, bit(Ctx::kPublish)};
  r[0x24] = {T::kByte, bit(Ctx::kConnack)};
  r[0x25] = {T::kByte, bit(Ctx::kConnack)};
  r[0x26] = {T::kUtf8Pair, kAllCtx};
  r[0x27] = {T::kFourByte, static_cast<std::uint16_t>(bit(Ctx::kConnect) | bit(Ctx::kConnack))};
  r[0x28] = {T::kByte, bit(Ctx::kConnack)};
  r[0x29] = {T::kByte, bit(Ctx::kConnack)};
  r[0x2A] = {T::kByte, bit(Ctx::kConnack)};
  return r;
}
constexpr auto kRules = make_rules();

// Reads one property value (identifier already consumed). False = truncated or bad encoding.
bool read_value(detail::ByteReader& in, PropertyType type, Property& p) noexcept {
  switch (type) {
    case PropertyType::kByte: {
      std::uint8_t v;
      if (!in.u8(v)) return false;
      p.number = v;
      return true;
    }
    case PropertyType::kTwoByte: {
      std::uint16_t v;
      if (!in.u16(v)) return false;
      p.number = v;
      return true;
    }
    case PropertyType::kFourByte: return in.u32(p.number);
    case PropertyType::kVarInt: return in.varint(p.number);
    case PropertyType::kUtf8: {
      Bytes b;
      if (!in.prefixed(b)) return false;
      p.text = as_chars(b);
      return true;
    }
    case PropertyType::kBinary: return in.prefixed(p.binary);
    case PropertyType::kUtf8Pair: {
      Bytes k, v;
      if (!in.prefixed(k) || !in.prefixed(v)) return false;
      p.text = as_chars(k);
      p.text2 = as_chars(v);
      return true;
    }
    case PropertyType::kInvalid: return false;
  }
  return false;
}

bool read_property(detail::ByteReader& in, Property& p, PropertyType& type) noexcept {
  std::uint8_t id;
  if (!in.u8(id)) return false;
  type = property_type(id);
  if (type == PropertyType::kInvalid) return false;
  p = Property{};
  p.id = static_cast<PropertyId>(id);
  return read_value(in, type, p);
}

// Value rules the spec states as "It is a Protocol Error to ..." in §3.1.2.11, §3.2.2.3,
// §3.3.2.3 and §3.8.2.1.
const char* value_error(PropertyId id, std::uint32_t v) noexcept {
  switch (id) {
    case PropertyId::kPayloadFormatIndicator:
    case PropertyId::kRequestProblemInformation:
    case PropertyId::kRequestResponseInformation:
    case PropertyId::kMaximumQoS:
    case PropertyId::kRetainAvailable:
    case PropertyId::kWildcardSubscriptionAvailable:
    case PropertyId::kSubscriptionIdentifierAvailable:
    case PropertyId::kSharedSubscriptionAvailable:
      return v > 1 ? "property value must be 0 or 1" : nullptr;
    case PropertyId::kReceiveMaximum: return v == 0 ? "Receive Maximum is 0" : nullptr;
    case PropertyId::kMaximumPacketSize: return v == 0 ? "Maximum Packet Size is 0" : nullptr;
    case PropertyId::kTopicAlias: return v == 0 ? "Topic Alias is 0 [MQTT-3.3.2-8]" : nullptr;
    case PropertyId::kSubscriptionIdentifier:
      return v == 0 ? "Subscription Identifier is 0" : nullptr;
    default: return nullptr;
  }
}

bool is_utf8_ok(std::string_view s) noexcept { return validate_utf8(s) == Utf8Status::kValid; }

}  // namespace

PropertyType property_type(std::uint8_t id) noexcept {
  return id < kRules.size() ? kRules[id].type : PropertyType::kInvalid;
}

bool Properties::next(Bytes& rest, Property& out) noexcept {
  detail::ByteReader in(rest);
  PropertyType type;
  if (in.empty() || !read_property(in, out, type)) return false;
  rest = in.rest();
  return true;
}

std::optional<Property> Properties::find(PropertyId id) const noexcept {
  for (const Property& p : *this) {
    if (p.id == id) return p;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> Properties::number(PropertyId id) const noexcept {
  const auto p = find(id);
  if (!p) return std::nullopt;
  return p->number;
}

Decoded<Properties> decode_properties(detail::ByteReader& in, PropertyContext context) noexcept {
  std::uint32_t length;
  if (!in.varint(length)) return malformed("bad Property Length");
  Bytes wire;
  if (!in.bytes(length, wire)) return malformed("Property Length exceeds the packet");
  return decode_property_list(wire, context);
}

Decoded<Properties> decode_property_list(Bytes wire, PropertyContext context) noexcept {
  const std::uint16_t ctx_bit = bit(context);
  // Only User Property may always repeat; Subscription Identifier may repeat in a PUBLISH
  // (one per matching subscription, 5.0 §3.3.2.3.8) but not in a SUBSCRIBE (§3.8.2.1.2).
  std::uint64_t seen = 0;
  detail::ByteReader r(wire);
  while (!r.empty()) {
    Property p;
    PropertyType type;
    if (!read_property(r, p, type)) {
      // Either an unknown identifier or a value running past the list.
      return malformed("unknown or truncated property");
    }
    const auto id = static_cast<std::uint8_t>(p.id);
    if ((kRules[id].allowed & ctx_bit) == 0) return protocol_error("property not allowed in this packet");
    const bool may_repeat = p.id == PropertyId::kUserProperty ||
                            (p.id == PropertyId::kSubscriptionIdentifier && context == Ctx::kPublish);
    const std::uint64_t mask = std::uint64_t{1} << id;
    if ((seen & mask) != 0 && !may_repeat) return protocol_error("property included more than once");
    seen |= mask;
    if (const char* why = value_error(p.id, p.number)) return protocol_error(why);
    if (type == PropertyType::kUtf8 && !is_utf8_ok(p.text)) return malformed("property string is not valid UTF-8");
    if (type == PropertyType::kUtf8Pair && (!is_utf8_ok(p.text) || !is_utf8_ok(p.text2))) {
      return malformed("User Property is not valid UTF-8 [MQTT-1.5.7-1]");
    }
  }
  const std::uint64_t method = std::uint64_t{1} << static_cast<unsigned>(PropertyId::kAuthenticationMethod);
  const std::uint64_t data = std::uint64_t{1} << static_cast<unsigned>(PropertyId::kAuthenticationData);
  if ((seen & data) != 0 && (seen & method) == 0) {
    return protocol_error("Authentication Data without Authentication Method");
  }
  return Properties(wire);
}

}  // namespace tcpms::mqtt
