// The short packets: CONNACK, PUBACK/PUBREC/PUBREL/PUBCOMP, DISCONNECT, AUTH.
// In 5.0 their tails are optional: a missing Reason Code means Success and a missing Property
// Length means no properties (5.0 §3.4.2.1, §3.14.2.1, §3.15.2.1); 3.x lengths are fixed.
#include "mqtt/decode_util.h"
#include "mqtt/decoder.h"

namespace tcpms::mqtt {
namespace {

using detail::ByteReader;

PropertyContext context_of(PacketType t) noexcept {
  switch (t) {
    case PacketType::kPubrec: return PropertyContext::kPubrec;
    case PacketType::kPubrel: return PropertyContext::kPubrel;
    case PacketType::kPubcomp: return PropertyContext::kPubcomp;
    default: return PropertyContext::kPuback;
  }
}

// Reads an optional Reason Code then optional properties, as 5.0 allows for these packets.
// `need_props_after_reason`: AUTH has no "omit the Property Length" rule.
DecodeError read_reason_tail(ByteReader& in, PacketType type, PropertyContext ctx,
                             bool need_props_after_reason, ReasonCode& reason,
                             Properties& props) noexcept {
  if (in.empty()) return {};
  std::uint8_t code = 0;
  (void)in.u8(code);
  if (!is_valid_reason_code(type, code)) return protocol_error("Reason Code not valid for this packet");
  reason = static_cast<ReasonCode>(code);
  if (in.empty() && !need_props_after_reason) return {};
  auto p = decode_properties(in, ctx);
  if (!p) return p.error();
  props = *p;
  return in.empty() ? DecodeError{} : malformed("bytes after the properties");
}

}  // namespace

Decoded<Connack> decode_connack(Bytes body, ProtocolVersion v) noexcept {
  ByteReader in(body);
  std::uint8_t ack_flags = 0, code = 0;
  if (!in.u8(ack_flags) || !in.u8(code)) return malformed("CONNACK truncated");
  Connack c;
  if (v == ProtocolVersion::kV31) {
    // 3.1 has no Session Present: the whole byte is reserved and not used (3.1 §3.2).
    ack_flags = 0;
  }
  // Bits 7-1 of the Connect Acknowledge Flags are reserved, 0 (3.1.1 §3.2.2.1, 5.0 §3.2.2.1.1).
  if ((ack_flags & 0xFEu) != 0) return malformed("CONNACK reserved flags set");
  c.session_present = (ack_flags & 0x01u) != 0;
  if (is_v5(v)) {
    if (!is_valid_reason_code(PacketType::kConnack, code)) return protocol_error("bad CONNACK reason code");
    c.reason = static_cast<ReasonCode>(code);
    auto props = decode_properties(in, PropertyContext::kConnack);
    if (!props) return props.error();
    c.properties = *props;
  } else {
    if (code > 5) return protocol_error("CONNACK return code reserved (3.1.1 §3.2.2.3)");
    c.reason = from_connect_return_code(static_cast<ConnectReturnCode>(code));
  }
  if (!in.empty()) return malformed("bytes after CONNACK");
  // A refused connection has no session [MQTT-3.2.2-4] (5.0: [MQTT-3.2.2-6]).
  if (c.session_present && c.reason != ReasonCode::kSuccess) {
    return protocol_error("Session Present with a non-zero return code [MQTT-3.2.2-4]");
  }
  return c;
}

Decoded<PublishResponse> decode_publish_response(PacketType type, Bytes body, ProtocolVersion v) noexcept {
  PublishResponse r;
  r.type = type;
  ByteReader in(body);
  DecodeError err;
  if (!detail::read_packet_id(in, r.packet_id, err)) return err;
  if (!is_v5(v)) {
    return in.empty() ? Decoded<PublishResponse>(r) : malformed("3.x acknowledgement longer than 2 bytes");
  }
  err = read_reason_tail(in, type, context_of(type), false, r.reason, r.properties);
  if (detail::is_error(err)) return err;
  return r;
}

Decoded<Disconnect> decode_disconnect(Bytes body, ProtocolVersion v) noexcept {
  Disconnect d;
  if (!is_v5(v)) {
    // 3.1.1 §3.14: no variable header, no payload.
    return body.empty() ? Decoded<Disconnect>(d) : malformed("3.x DISCONNECT with a body");
  }
  ByteReader in(body);
  DecodeError err = read_reason_tail(in, PacketType::kDisconnect, PropertyContext::kDisconnect,
                                     false, d.reason, d.properties);
  if (detail::is_error(err)) return err;
  return d;
}

Decoded<Auth> decode_auth(Bytes body, ProtocolVersion v) noexcept {
  if (!is_v5(v)) return protocol_error("AUTH before MQTT 5.0 (packet type 15 is reserved)");
  Auth a;
  ByteReader in(body);
  DecodeError err = read_reason_tail(in, PacketType::kAuth, PropertyContext::kAuth, true,
                                     a.reason, a.properties);
  if (detail::is_error(err)) return err;
  return a;
}

}  // namespace tcpms::mqtt
