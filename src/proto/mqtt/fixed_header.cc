#include "mqtt/fixed_header.h"

#include "mqtt/vbi.h"

namespace tcpms::mqtt {

DecodeError check_fixed_header_flags(PacketType type, std::uint8_t flags) noexcept {
  switch (type) {
    case PacketType::kPublish: {
      const unsigned qos = (flags >> 1) & 0x03u;
      if (qos == 3) return malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]");
      if (qos == 0 && (flags & 0x08u) != 0) return malformed("PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]");
      return {};
    }
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
      return flags == 0x02 ? DecodeError{} : malformed("reserved flags must be 0010 [MQTT-2.2.2-1]");
    default:
      return flags == 0 ? DecodeError{} : malformed("reserved flags must be 0000 [MQTT-2.2.2-1]");
  }
}

FixedHeaderResult decode_fixed_header(Bytes in, std::uint32_t max_packet_size) noexcept {
  FixedHeaderResult r;
  if (in.empty()) return r;  // kNeedMore
  const auto b0 = static_cast<std::uint8_t>(in[0]);
  const auto type_nibble = static_cast<std::uint8_t>(b0 >> 4);
  if (type_nibble == 0) {
    r.status = FrameStatus::kError;
    r.error = malformed("packet type 0 is reserved");
    return r;
  }
  const auto type = static_cast<PacketType>(type_nibble);
  const auto flags = static_cast<std::uint8_t>(b0 & 0x0Fu);
  if (DecodeError e = check_fixed_header_flags(type, flags); e.code != ReasonCode::kSuccess) {
    r.status = FrameStatus::kError;
    r.error = e;
    return r;
  }
  const VarIntResult len = decode_varint(in.subspan(1));
  if (len.status == VarIntStatus::kNeedMore) return r;
  if (len.status == VarIntStatus::kMalformed) {
    r.status = FrameStatus::kError;
    r.error = malformed("bad Remaining Length");
    return r;
  }
  if ((type == PacketType::kPingreq || type == PacketType::kPingresp) && len.value != 0) {
    r.status = FrameStatus::kError;
    r.error = malformed("PINGREQ/PINGRESP with a body");
    return r;
  }
  r.header = {type, flags, len.value, static_cast<std::uint8_t>(1 + len.size)};
  if (max_packet_size != 0 && r.header.packet_size() > max_packet_size) {
    r.status = FrameStatus::kError;
    r.error = {ReasonCode::kPacketTooLarge, "packet larger than Maximum Packet Size"};
    return r;
  }
  r.status = FrameStatus::kComplete;
  return r;
}

FrameResult next_frame(Bytes in, std::uint32_t max_packet_size) noexcept {
  const FixedHeaderResult h = decode_fixed_header(in, max_packet_size);
  FrameResult r;
  r.status = h.status;
  r.header = h.header;
  r.error = h.error;
  if (h.status != FrameStatus::kComplete) return r;
  if (in.size() < h.header.packet_size()) {
    r.status = FrameStatus::kNeedMore;
    return r;
  }
  r.body = in.subspan(h.header.header_size, h.header.remaining_length);
  return r;
}

}  // namespace tcpms::mqtt
