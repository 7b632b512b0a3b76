// Framing: the fixed header (3.1.1 §2.2, 5.0 §2.1) and the split of a byte stream into packets.
// This is the first thing the broker runs on every read, so it validates before anything is
// buffered: the declared size is checked against max_packet_size as soon as the Remaining Length
// is known, so a peer announcing 256 MiB costs us at most 5 bytes, never a buffer.
// Pure functions: callable from any thread.
#pragma once

#include <cstdint>

#include "mqtt/result.h"
#include "mqtt/types.h"

namespace tcpms::mqtt {

struct FixedHeader {
  PacketType type{};
  std::uint8_t flags = 0;  // low nibble of byte 1
  std::uint32_t remaining_length = 0;
  std::uint8_t header_size = 0;  // 2..5 bytes
  std::uint32_t packet_size() const noexcept { return header_size + remaining_length; }
};

enum class FrameStatus : std::uint8_t { kComplete, kNeedMore, kError };

struct FixedHeaderResult {
  FrameStatus status = FrameStatus::kNeedMore;
  FixedHeader header;  // valid when kComplete
  DecodeError error;   // valid when kError
};

// Decodes a fixed header from the start of `in`. kComplete means the header is whole (the body
// may not be). Errors:
//  - packet type 0 (reserved / forbidden): Malformed Packet;
//  - flags other than the reserved values of 3.1.1 Table 2.2 / 5.0 §2.1.3 [MQTT-2.2.2-1],
//    [MQTT-2.2.2-2] (5.0: [MQTT-2.1.3-1]): Malformed Packet. PUBREL, SUBSCRIBE and UNSUBSCRIBE
//    must carry 0010 [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]; the rest 0000;
//  - PUBLISH with QoS 3 [MQTT-3.3.1-4] or DUP set on QoS 0 [MQTT-3.3.1-2]: Malformed Packet;
//  - Remaining Length over 4 bytes or not minimal [MQTT-1.5.5-1]: Malformed Packet;
//  - PINGREQ/PINGRESP with a body: Malformed Packet (they have none, §3.12, §3.13);
//  - header + Remaining Length > max_packet_size: Packet too large (0x95), 5.0 §3.1.2.11.4.
// `max_packet_size` of 0 means the protocol maximum.
FixedHeaderResult decode_fixed_header(Bytes in, std::uint32_t max_packet_size) noexcept;

// The checks above that concern only the first byte; exposed for tests and the encoder.
DecodeError check_fixed_header_flags(PacketType type, std::uint8_t flags) noexcept;

struct FrameResult {
  FrameStatus status = FrameStatus::kNeedMore;
  FixedHeader header;
  Bytes body;  // exactly remaining_length bytes, when kComplete
  DecodeError error;
};

// decode_fixed_header plus "is the whole body here?": kComplete yields the body view and the
// caller consumes header.packet_size() bytes. kNeedMore never allocates; the caller keeps the
// partial frame (bounded by max_packet_size, which is already checked).
FrameResult next_frame(Bytes in, std::uint32_t max_packet_size) noexcept;

}  // namespace tcpms::mqtt
