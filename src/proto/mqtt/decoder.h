// Packet body decoders. Call after next_frame()/decode_fixed_header() accepted the fixed header
// (that is where reserved flag bits, the Remaining Length and max_packet_size are checked).
//
// Every decoder consumes exactly the body: trailing bytes are a Malformed Packet. Errors carry
// the 5.0 reason code to send (5.0 peers) or just to log (3.x peers, who only get a close):
//   Malformed Packet 0x81   the bytes cannot be parsed (truncation, bad UTF-8, reserved bits)
//   Protocol Error 0x82     parsed, but a rule forbids it (packet id 0, repeated property, ...)
//   Topic Name invalid 0x90 PUBLISH / Will topic with wildcards or empty (3.x)
//   Unsupported Protocol Version 0x84  CONNECT name/level unknown: answer CONNACK first
// Results are views into `body`; see packet.h. Thread-safe: pure functions.
#pragma once

#include <cstdint>
#include <optional>

#include "mqtt/fixed_header.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"

namespace tcpms::mqtt {

// CONNECT carries its own protocol level. An unknown protocol name or level returns
// kUnsupportedProtocolVersion, so the broker can send CONNACK 0x01 (3.1.1) / 0x84 (5.0) and
// close [MQTT-3.1.2-1], [MQTT-3.1.2-2].
Decoded<Connect> decode_connect(Bytes body) noexcept;

// The version a broker should answer a (possibly invalid) CONNECT in: 5 only if the body starts
// with "MQTT" level 5, so a 5.0 client gets a 5.0 CONNACK with the reason code; nullopt if the
// name or level is unknown (answer as 3.1.1, which every client understands: 0x01).
std::optional<ProtocolVersion> peek_connect_version(Bytes body) noexcept;

Decoded<Connack> decode_connack(Bytes body, ProtocolVersion v) noexcept;
// `flags` is the fixed header's low nibble: DUP, QoS, RETAIN.
Decoded<Publish> decode_publish(std::uint8_t flags, Bytes body, ProtocolVersion v) noexcept;
// PUBACK, PUBREC, PUBREL or PUBCOMP, per `type`.
Decoded<PublishResponse> decode_publish_response(PacketType type, Bytes body, ProtocolVersion v) noexcept;
Decoded<Subscribe> decode_subscribe(Bytes body, ProtocolVersion v) noexcept;
Decoded<Suback> decode_suback(Bytes body, ProtocolVersion v) noexcept;
Decoded<Unsubscribe> decode_unsubscribe(Bytes body, ProtocolVersion v) noexcept;
Decoded<Unsuback> decode_unsuback(Bytes body, ProtocolVersion v) noexcept;
Decoded<Disconnect> decode_disconnect(Bytes body, ProtocolVersion v) noexcept;
Decoded<Auth> decode_auth(Bytes body, ProtocolVersion v) noexcept;  // 5.0 only

// Dispatch on header.type. `v` is the connection's negotiated version (ignored for CONNECT).
// Direction (client->server vs server->client) is not checked here: the broker rejects a
// CONNACK from a client in its state machine, and the load generator does the converse.
Decoded<Packet> decode_packet(const FixedHeader& header, Bytes body, ProtocolVersion v) noexcept;

}  // namespace tcpms::mqtt
