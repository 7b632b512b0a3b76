// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK: 3.1.1 §3.8-§3.11, 5.0 §3.8-§3.11.
// The filters' wire format is checked here; their topic structure (wildcard placement,
// $share syntax) is left to the broker per entry via validate_topic_filter(), because 5.0
// answers a bad filter with a SUBACK/UNSUBACK reason 0x8F for that entry, not by closing.
#include <type_traits>

#include "mqtt/decode_util.h"
#include "mqtt/decoder.h"
#include "mqtt/topic.h"

namespace tcpms::mqtt {
namespace {

using detail::ByteReader;

// Packet Identifier and, for 5.0, properties: the common variable header of all four packets.
DecodeError read_id_and_props(ByteReader& in, ProtocolVersion v, PropertyContext ctx,
                              std::uint16_t& id, Properties& props) noexcept {
  DecodeError err;
  if (!detail::read_packet_id(in, id, err)) return err;
  if (!is_v5(v)) return {};
  auto p = decode_properties(in, ctx);
  if (!p) return p.error();
  props = *p;
  return {};
}

DecodeError check_options(std::uint8_t o, std::string_view filter, ProtocolVersion v) noexcept {
  if (!is_v5(v)) {
    // [MQTT-3.8.3-4] (3.1.1): upper 6 bits reserved and QoS 0..2, else malformed.
    return (o & 0xFCu) != 0 || (o & 0x03u) == 3
               ? malformed("SUBSCRIBE reserved bits or QoS 3 [MQTT-3.8.3-4]")
               : DecodeError{};
  }
  if ((o & 0xC0u) != 0) return malformed("Subscription Options reserved bits set [MQTT-3.8.3-5]");
  if ((o & 0x03u) == 3) return protocol_error("Subscription Options QoS 3 (5.0 §3.8.3.1)");
  if (((o >> 4) & 0x03u) == 3) return protocol_error("Retain Handling 3 (5.0 §3.8.3.1)");
  if ((o & 0x04u) != 0 && is_shared_subscription(filter)) {
    return protocol_error("No Local on a Shared Subscription [MQTT-3.8.3-4]");
  }
  return {};
}

// The payload of SUBSCRIBE (filter + options byte per entry) or UNSUBSCRIBE (filter only).
DecodeError check_entries(Bytes entries, PacketType type, ProtocolVersion v) noexcept {
  const bool sub = type == PacketType::kSubscribe;
  if (entries.empty()) {
    return protocol_error(sub ? "SUBSCRIBE without a Topic Filter [MQTT-3.8.3-3]"
                              : "UNSUBSCRIBE without a Topic Filter [MQTT-3.10.3-2]");
  }
  ByteReader in(entries);
  while (!in.empty()) {
    std::string_view filter;
    if (!detail::read_utf8(in, filter)) {
      return malformed(sub ? "Topic Filter truncated or not UTF-8 [MQTT-3.8.3-1]"
                           : "Topic Filter truncated or not UTF-8 [MQTT-3.10.3-1]");
    }
    if (!sub) continue;
    std::uint8_t options = 0;
    if (!in.u8(options)) return malformed("Subscription Options missing");
    if (DecodeError e = check_options(options, filter, v); detail::is_error(e)) return e;
  }
  return {};
}

// Reason codes of SUBACK/UNSUBACK: at least one, each valid for the packet and version.
// A 3.x UNSUBACK has none.
DecodeError check_reason_list(Bytes codes, PacketType type, ProtocolVersion v) noexcept {
  if (!is_v5(v) && type == PacketType::kUnsuback) {
    return codes.empty() ? DecodeError{} : malformed("3.x UNSUBACK longer than 2 bytes");
  }
  if (codes.empty()) return malformed("no reason codes");
  for (const std::byte b : codes) {
    const auto c = static_cast<std::uint8_t>(b);
    const bool ok = is_v5(v) ? is_valid_reason_code(type, c) : (c <= 2 || c == 0x80);
    if (!ok) return protocol_error("reason code not allowed in SUBACK/UNSUBACK [MQTT-3.9.3-2] (3.1.1)");
  }
  return {};
}

// The four packets share "Packet Identifier, 5.0 properties, list": `T` says where each goes.
template <class T, class Check>
Decoded<T> decode_list(Bytes body, ProtocolVersion v, PropertyContext ctx, Check check) noexcept {
  ByteReader in(body);
  T out;
  DecodeError e = read_id_and_props(in, v, ctx, out.packet_id, out.properties);
  const Bytes list = in.rest();
  if (!detail::is_error(e)) e = check(list);
  if (detail::is_error(e)) return e;
  if constexpr (std::is_same_v<T, Subscribe>) out.subscriptions = SubscriptionRange(list);
  if constexpr (std::is_same_v<T, Unsubscribe>) out.filters = FilterRange(list);
  if constexpr (std::is_same_v<T, Suback> || std::is_same_v<T, Unsuback>) out.reason_codes = list;
  return out;
}

}  // namespace

Decoded<Subscribe> decode_subscribe(Bytes body, ProtocolVersion v) noexcept {
  return decode_list<Subscribe>(body, v, PropertyContext::kSubscribe,
                                [v](Bytes l) { return check_entries(l, PacketType::kSubscribe, v); });
}

Decoded<Unsubscribe> decode_unsubscribe(Bytes body, ProtocolVersion v) noexcept {
  return decode_list<Unsubscribe>(body, v, PropertyContext::kUnsubscribe,
                                  [v](Bytes l) { return check_entries(l, PacketType::kUnsubscribe, v); });
}

Decoded<Suback> decode_suback(Bytes body, ProtocolVersion v) noexcept {
  return decode_list<Suback>(body, v, PropertyContext::kSuback,
                             [v](Bytes l) { return check_reason_list(l, PacketType::kSuback, v); });
}

Decoded<Unsuback> decode_unsuback(Bytes body, ProtocolVersion v) noexcept {
  return decode_list<Unsuback>(body, v, PropertyContext::kUnsuback,
                               [v](Bytes l) { return check_reason_list(l, PacketType::kUnsuback, v); });
}

}  // namespace tcpms::mqtt
