// Packet encoders, for the broker (CONNACK, PUBLISH, acks, SUBACK, UNSUBACK, PINGRESP,
// DISCONNECT, AUTH) and for the load generator's client side (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
// PINGREQ, DISCONNECT). They write into caller memory and never allocate:
//
//   std::size_t n = encoded_size(pkt, v);      // 0: cannot be encoded (see below)
//   std::size_t w = encode(pkt, v, out_span);  // bytes written; 0 if unencodable or too small
//
// "Cannot be encoded" means the result would break a rule our own decoder enforces: a string
// over 65535 bytes, a Remaining Length over kMaxVarInt, QoS>0 with packet id 0, DUP on QoS 0,
// a 3.x password without a user name, AUTH on 3.x. Fields the version lacks (3.x properties and
// most reason codes) are dropped; a 3.x CONNACK maps its reason with to_connect_return_code().
// Encoders emit the shortest form the spec allows (e.g. a 5.0 PUBACK with Success and no
// properties is 2 bytes of body). Pure functions: callable from any thread.
#pragma once

#include <cstddef>
#include <span>

#include "mqtt/packet.h"

namespace tcpms::mqtt {

using OutBytes = std::span<std::byte>;

std::size_t encoded_size(const Connect& p) noexcept;  // version comes from p.version
std::size_t encode(const Connect& p, OutBytes out) noexcept;

std::size_t encoded_size(const Connack& p, ProtocolVersion v) noexcept;
std::size_t encode(const Connack& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Publish& p, ProtocolVersion v) noexcept;
std::size_t encode(const Publish& p, ProtocolVersion v, OutBytes out) noexcept;

// PUBLISH without its payload: fixed header (whose Remaining Length counts p.payload.size()),
// topic, packet id and 5.0 properties. The broker writes this per subscriber and sends the one
// shared payload by reference after it (writev), so fan-out copies no payload bytes.
std::size_t publish_header_size(const Publish& p, ProtocolVersion v) noexcept;
std::size_t encode_publish_header(const Publish& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const PublishResponse& p, ProtocolVersion v) noexcept;
std::size_t encode(const PublishResponse& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Subscribe& p, ProtocolVersion v) noexcept;
std::size_t encode(const Subscribe& p, ProtocolVersion v, OutBytes out) noexcept;
// Client side: build a SUBSCRIBE from a list rather than from wire entries.
std::size_t subscribe_size(std::uint16_t packet_id, std::span<const Subscription> subs,
                           const Properties& props, ProtocolVersion v) noexcept;
std::size_t encode_subscribe(std::uint16_t packet_id, std::span<const Subscription> subs,
                             const Properties& props, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Suback& p, ProtocolVersion v) noexcept;
std::size_t encode(const Suback& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Unsubscribe& p, ProtocolVersion v) noexcept;
std::size_t encode(const Unsubscribe& p, ProtocolVersion v, OutBytes out) noexcept;
std::size_t unsubscribe_size(std::uint16_t packet_id, std::span<const std::string_view> filters,
                             const Properties& props, ProtocolVersion v) noexcept;
std::size_t encode_unsubscribe(std::uint16_t packet_id, std::span<const std::string_view> filters,
                               const Properties& props, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Unsuback& p, ProtocolVersion v) noexcept;
std::size_t encode(const Unsuback& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Pingreq& p, ProtocolVersion v) noexcept;
std::size_t encode(const Pingreq& p, ProtocolVersion v, OutBytes out) noexcept;
std::size_t encoded_size(const Pingresp& p, ProtocolVersion v) noexcept;
std::size_t encode(const Pingresp& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Disconnect& p, ProtocolVersion v) noexcept;
std::size_t encode(const Disconnect& p, ProtocolVersion v, OutBytes out) noexcept;

std::size_t encoded_size(const Auth& p, ProtocolVersion v) noexcept;  // 0 unless 5.0
std::size_t encode(const Auth& p, ProtocolVersion v, OutBytes out) noexcept;

// Any packet (CONNECT ignores `v`).
std::size_t encoded_size(const Packet& p, ProtocolVersion v) noexcept;
std::size_t encode(const Packet& p, ProtocolVersion v, OutBytes out) noexcept;

}  // namespace tcpms::mqtt
