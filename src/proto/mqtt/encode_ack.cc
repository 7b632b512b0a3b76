// The short packets: PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ/PINGRESP, DISCONNECT, AUTH.
// 5.0 lets a sender drop a trailing Success reason and an empty property list; we always do,
// since these packets are the bulk of QoS 1/2 traffic.
#include "mqtt/encode_util.h"
#include "mqtt/encoder.h"

namespace tcpms::mqtt {
namespace {

// Size of "[reason [properties]]" in the 5.0 short form.
std::size_t reason_tail_size(ReasonCode reason, const Properties& props, bool keep_props_len) noexcept {
  if (!props.empty()) return 1 + detail::properties_size(props);
  if (reason != ReasonCode::kSuccess) return keep_props_len ? 2 : 1;
  return 0;
}

void write_reason_tail(detail::ByteWriter& w, ReasonCode reason, const Properties& props,
                       bool keep_props_len) noexcept {
  if (props.empty() && reason == ReasonCode::kSuccess) return;
  w.u8(to_byte(reason));
  if (!props.empty() || keep_props_len) detail::write_properties(w, props);
}

std::size_t ack_body_size(const PublishResponse& p, ProtocolVersion v) noexcept {
  if (p.packet_id == 0) return detail::kUnencodable;
  return 2 + (is_v5(v) ? reason_tail_size(p.reason, p.properties, false) : 0);
}

std::uint8_t ack_byte0(PacketType t) noexcept {
  return detail::type_byte(t, t == PacketType::kPubrel ? 0x02 : 0x00);  // [MQTT-3.6.1-1]
}

// AUTH has no "Property Length may be omitted" rule (5.0 §3.15.2.2), so keep it.
std::size_t auth_body_size(const Auth& a, ProtocolVersion v) noexcept {
  return is_v5(v) ? reason_tail_size(a.reason, a.properties, true) : detail::kUnencodable;
}

std::size_t disconnect_body_size(const Disconnect& d, ProtocolVersion v) noexcept {
  return is_v5(v) ? reason_tail_size(d.reason, d.properties, false) : 0;
}

std::size_t encode_empty(PacketType t, OutBytes out) noexcept {
  return detail::encode_frame(detail::type_byte(t), 0, out, [](detail::ByteWriter&) {});
}

}  // namespace

std::size_t encoded_size(const PublishResponse& p, ProtocolVersion v) noexcept {
  return detail::frame_size(ack_body_size(p, v));
}

std::size_t encode(const PublishResponse& p, ProtocolVersion v, OutBytes out) noexcept {
  return detail::encode_frame(ack_byte0(p.type), ack_body_size(p, v), out, [&](detail::ByteWriter& w) {
    w.u16(p.packet_id);
    if (is_v5(v)) write_reason_tail(w, p.reason, p.properties, false);
  });
}

std::size_t encoded_size(const Pingreq&, ProtocolVersion) noexcept { return 2; }
std::size_t encode(const Pingreq&, ProtocolVersion, OutBytes out) noexcept {
  return encode_empty(PacketType::kPingreq, out);
}
std::size_t encoded_size(const Pingresp&, ProtocolVersion) noexcept { return 2; }
std::size_t encode(const Pingresp&, ProtocolVersion, OutBytes out) noexcept {
  return encode_empty(PacketType::kPingresp, out);
}

std::size_t encoded_size(const Disconnect& d, ProtocolVersion v) noexcept {
  return detail::frame_size(disconnect_body_size(d, v));
}

std::size_t encode(const Disconnect& d, ProtocolVersion v, OutBytes out) noexcept {
  return detail::encode_frame(detail::type_byte(PacketType::kDisconnect), disconnect_body_size(d, v),
                              out, [&](detail::ByteWriter& w) {
    if (is_v5(v)) write_reason_tail(w, d.reason, d.properties, false);
  });
}

std::size_t encoded_size(const Auth& a, ProtocolVersion v) noexcept {
  return detail::frame_size(auth_body_size(a, v));
}

std::size_t encode(const Auth& a, ProtocolVersion v, OutBytes out) noexcept {
  return detail::encode_frame(detail::type_byte(PacketType::kAuth), auth_body_size(a, v), out,
                              [&](detail::ByteWriter& w) { write_reason_tail(w, a.reason, a.properties, true); });
}

}  // namespace tcpms::mqtt
