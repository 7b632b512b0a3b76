// CONNECT (client side, used by the load generator) and CONNACK (broker side).
#include "mqtt/encode_util.h"
#include "mqtt/encoder.h"

namespace tcpms::mqtt {
namespace {

using detail::prefixed_size;
using detail::properties_size;

std::string_view protocol_name(ProtocolVersion v) noexcept {
  return v == ProtocolVersion::kV31 ? "MQIsdp" : "MQTT";
}

std::size_t connect_body_size(const Connect& c) noexcept {
  const bool v5 = is_v5(c.version);
  // The encoder refuses what the decoder rejects: [MQTT-3.1.2-22] before 5.0, Will QoS 3.
  if (!v5 && c.password && !c.username) return detail::kUnencodable;
  if (c.will && static_cast<unsigned>(c.will->qos) > 2) return detail::kUnencodable;
  std::size_t n = prefixed_size(protocol_name(c.version)) + 1 + 1 + 2;
  if (v5) n += properties_size(c.properties);
  n += prefixed_size(c.client_id);
  if (c.will) {
    if (v5) n += properties_size(c.will->properties);
    n += prefixed_size(c.will->topic) + prefixed_size(c.will->payload);
  }
  if (c.username) n += prefixed_size(*c.username);
  if (c.password) n += prefixed_size(*c.password);
  return n;
}

std::uint8_t connect_flags(const Connect& c) noexcept {
  unsigned f = c.clean_start ? 0x02u : 0u;
  if (c.will) {
    f |= 0x04u | (static_cast<unsigned>(c.will->qos) << 3) | (c.will->retain ? 0x20u : 0u);
  }
  if (c.password) f |= 0x40u;
  if (c.username) f |= 0x80u;
  return static_cast<std::uint8_t>(f);
}

std::size_t connack_body_size(const Connack& c, ProtocolVersion v) noexcept {
  return is_v5(v) ? 2 + properties_size(c.properties) : 2;
}

}  // namespace

std::size_t encoded_size(const Connect& p) noexcept { return detail::frame_size(connect_body_size(p)); }

std::size_t encode(const Connect& c, OutBytes out) noexcept {
  const bool v5 = is_v5(c.version);
  return detail::encode_frame(detail::type_byte(PacketType::kConnect), connect_body_size(c), out,
                              [&](detail::ByteWriter& w) {
    w.prefixed(protocol_name(c.version));
    w.u8(static_cast<std::uint8_t>(c.version));
    w.u8(connect_flags(c));
    w.u16(c.keep_alive_s);
    if (v5) detail::write_properties(w, c.properties);
    w.prefixed(c.client_id);
    if (c.will) {
      if (v5) detail::write_properties(w, c.will->properties);
      w.prefixed(c.will->topic);
      w.prefixed(c.will->payload);
    }
    if (c.username) w.prefixed(*c.username);
    if (c.password) w.prefixed(*c.password);
  });
}

std::size_t encoded_size(const Connack& p, ProtocolVersion v) noexcept {
  return detail::frame_size(connack_body_size(p, v));
}

std::size_t encode(const Connack& c, ProtocolVersion v, OutBytes out) noexcept {
  return detail::encode_frame(detail::type_byte(PacketType::kConnack), connack_body_size(c, v), out,
                              [&](detail::ByteWriter& w) {
    // A refused connection never reports a session [MQTT-3.2.2-4] (5.0: [MQTT-3.2.2-6]); 3.1
    // has no Session Present flag at all: its first byte is reserved, 0 (3.1 §3.2).
    const bool present = c.session_present && c.reason == ReasonCode::kSuccess &&
                         v != ProtocolVersion::kV31;
    w.u8(present ? 1 : 0);
    if (is_v5(v)) {
      w.u8(to_byte(c.reason));
      detail::write_properties(w, c.properties);
    } else {
      w.u8(static_cast<std::uint8_t>(to_connect_return_code(c.reason)));
    }
  });
}

}  // namespace tcpms::mqtt
