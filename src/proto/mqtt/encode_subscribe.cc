// SUBSCRIBE / UNSUBSCRIBE (client side) and SUBACK / UNSUBACK (broker side).
#include "mqtt/encode_util.h"
#include "mqtt/encoder.h"

namespace tcpms::mqtt {
namespace {

std::size_t id_and_props_size(std::uint16_t id, const Properties& props, ProtocolVersion v) noexcept {
  if (id == 0) return detail::kUnencodable;  // [MQTT-2.3.1-1]
  return 2 + (is_v5(v) ? detail::properties_size(props) : 0);
}

void write_id_and_props(detail::ByteWriter& w, std::uint16_t id, const Properties& props,
                        ProtocolVersion v) noexcept {
  w.u16(id);
  if (is_v5(v)) detail::write_properties(w, props);
}

// 3.x has only the QoS bits; the others are reserved there [MQTT-3.8.3-4].
std::uint8_t wire_options(const SubscriptionOptions& o, ProtocolVersion v) noexcept {
  return is_v5(v) ? options_byte(o) : static_cast<std::uint8_t>(o.max_qos);
}

std::size_t entry_size(const Subscription& s) noexcept {
  return static_cast<unsigned>(s.options.max_qos) > 2 ? detail::kUnencodable
                                                      : detail::prefixed_size(s.filter) + 1;
}
std::size_t entry_size(std::string_view filter) noexcept { return detail::prefixed_size(filter); }

void write_entry(detail::ByteWriter& w, const Subscription& s, ProtocolVersion v) noexcept {
  w.prefixed(s.filter);
  w.u8(wire_options(s.options, v));
}
void write_entry(detail::ByteWriter& w, std::string_view filter, ProtocolVersion) noexcept {
  w.prefixed(filter);
}

// SUBSCRIBE or UNSUBSCRIBE body from any range of entries: a span from the client, or the
// EntryRange of a decoded packet. At least one entry [MQTT-3.8.3-3], [MQTT-3.10.3-2].
template <class Range>
std::size_t list_body_size(std::uint16_t id, const Range& entries, const Properties& props,
                           ProtocolVersion v) noexcept {
  std::size_t n = id_and_props_size(id, props, v);
  bool any = false;
  for (const auto& e : entries) {
    n += entry_size(e);
    any = true;
  }
  return any ? n : detail::kUnencodable;
}

template <class Range>
std::size_t encode_list(PacketType type, std::uint16_t id, const Range& entries,
                        const Properties& props, ProtocolVersion v, OutBytes out) noexcept {
  // SUBSCRIBE and UNSUBSCRIBE flags are 0010 [MQTT-3.8.1-1], [MQTT-3.10.1-1].
  return detail::encode_frame(detail::type_byte(type, 0x02), list_body_size(id, entries, props, v),
                              out, [&](detail::ByteWriter& w) {
    write_id_and_props(w, id, props, v);
    for (const auto& e : entries) write_entry(w, e, v);
  });
}

std::size_t suback_body_size(const Suback& s, ProtocolVersion v) noexcept {
  if (s.reason_codes.empty()) return detail::kUnencodable;
  return id_and_props_size(s.packet_id, s.properties, v) + s.reason_codes.size();
}

std::size_t unsuback_body_size(const Unsuback& u, ProtocolVersion v) noexcept {
  if (!is_v5(v)) return id_and_props_size(u.packet_id, u.properties, v);  // 3.x: id only
  if (u.reason_codes.empty()) return detail::kUnencodable;
  return id_and_props_size(u.packet_id, u.properties, v) + u.reason_codes.size();
}

}  // namespace

std::size_t subscribe_size(std::uint16_t packet_id, std::span<const Subscription> subs,
                           const Properties& props, ProtocolVersion v) noexcept {
  return detail::frame_size(list_body_size(packet_id, subs, props, v));
}
std::size_t encode_subscribe(std::uint16_t packet_id, std::span<const Subscription> subs,
                             const Properties& props, ProtocolVersion v, OutBytes out) noexcept {
  return encode_list(PacketType::kSubscribe, packet_id, subs, props, v, out);
}
std::size_t encoded_size(const Subscribe& p, ProtocolVersion v) noexcept {
  return detail::frame_size(list_body_size(p.packet_id, p.subscriptions, p.properties, v));
}
std::size_t encode(const Subscribe& p, ProtocolVersion v, OutBytes out) noexcept {
  return encode_list(PacketType::kSubscribe, p.packet_id, p.subscriptions, p.properties, v, out);
}

std::size_t unsubscribe_size(std::uint16_t packet_id, std::span<const std::string_view> filters,
                             const Properties& props, ProtocolVersion v) noexcept {
  return detail::frame_size(list_body_size(packet_id, filters, props, v));
}
std::size_t encode_unsubscribe(std::uint16_t packet_id, std::span<const std::string_view> filters,
                               const Properties& props, ProtocolVersion v, OutBytes out) noexcept {
  return encode_list(PacketType::kUnsubscribe, packet_id, filters, props, v, out);
}
std::size_t encoded_size(const Unsubscribe& p, ProtocolVersion v) noexcept {
  return detail::frame_size(list_body_size(p.packet_id, p.filters, p.properties, v));
}
std::size_t encode(const Unsubscribe& p, ProtocolVersion v, OutBytes out) noexcept {
  return encode_list(PacketType::kUnsubscribe, p.packet_id, p.filters, p.properties, v, out);
}

std::size_t encoded_size(const Suback& p, ProtocolVersion v) noexcept {
  return detail::frame_size(suback_body_size(p, v));
}
std::size_t encode(const Suback& s, ProtocolVersion v, OutBytes out) noexcept {
  return detail::encode_frame(detail::type_byte(PacketType::kSuback), suback_body_size(s, v), out,
                              [&](detail::ByteWriter& w) {
    write_id_and_props(w, s.packet_id, s.properties, v);
    for (const std::byte b : s.reason_codes) {
      // 3.1.1 knows only 0x00-0x02 and 0x80 [MQTT-3.9.3-2]: every failure becomes 0x80.
      const auto c = static_cast<std::uint8_t>(b);
      w.u8(is_v5(v) || c <= 2 ? c : 0x80);
    }
  });
}

std::size_t encoded_size(const Unsuback& p, ProtocolVersion v) noexcept {
  return detail::frame_size(unsuback_body_size(p, v));
}
std::size_t encode(const Unsuback& u, ProtocolVersion v, OutBytes out) noexcept {
  return detail::encode_frame(detail::type_byte(PacketType::kUnsuback), unsuback_body_size(u, v), out,
                              [&](detail::ByteWriter& w) {
    write_id_and_props(w, u.packet_id, u.properties, v);
    if (is_v5(v)) w.raw(u.reason_codes);
  });
}

}  // namespace tcpms::mqtt
