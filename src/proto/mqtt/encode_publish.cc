// PUBLISH, with the header-only variant the broker uses for fan-out.
#include "mqtt/encode_util.h"
#include "mqtt/encoder.h"

namespace tcpms::mqtt {
namespace {

// Everything after the fixed header except the payload; kUnencodable for invalid input.
std::size_t variable_header_size(const Publish& p, ProtocolVersion v) noexcept {
  const auto qos = static_cast<unsigned>(p.qos);
  if (qos > 2) return detail::kUnencodable;
  if (qos == 0 && p.dup) return detail::kUnencodable;        // [MQTT-3.3.1-2]
  if (qos > 0 && p.packet_id == 0) return detail::kUnencodable;  // [MQTT-2.3.1-1]
  std::size_t n = detail::prefixed_size(p.topic) + (qos > 0 ? 2 : 0);
  if (is_v5(v)) n += detail::properties_size(p.properties);
  return n;
}

std::uint8_t publish_byte0(const Publish& p) noexcept {
  return detail::type_byte(PacketType::kPublish,
                           static_cast<std::uint8_t>((p.dup ? 0x08u : 0u) |
                                                     (static_cast<unsigned>(p.qos) << 1) |
                                                     (p.retain ? 0x01u : 0u)));
}

}  // namespace

std::size_t encoded_size(const Publish& p, ProtocolVersion v) noexcept {
  return detail::frame_size(variable_header_size(p, v) + p.payload.size());
}

std::size_t publish_header_size(const Publish& p, ProtocolVersion v) noexcept {
  const std::size_t total = encoded_size(p, v);
  return total == 0 ? 0 : total - p.payload.size();
}

std::size_t encode_publish_header(const Publish& p, ProtocolVersion v, OutBytes out) noexcept {
  const std::size_t header = publish_header_size(p, v);
  if (header == 0 || out.size() < header) return 0;
  detail::ByteWriter w(out.data());
  w.u8(publish_byte0(p));
  w.varint(static_cast<std::uint32_t>(variable_header_size(p, v) + p.payload.size()));
  w.prefixed(p.topic);
  if (p.qos != QoS::k0) w.u16(p.packet_id);
  if (is_v5(v)) detail::write_properties(w, p.properties);
  return w.written();
}

std::size_t encode(const Publish& p, ProtocolVersion v, OutBytes out) noexcept {
  if (out.size() < encoded_size(p, v)) return 0;
  const std::size_t header = encode_publish_header(p, v, out);
  if (header == 0) return 0;
  detail::ByteWriter w(out.data() + header);
  w.raw(p.payload);
  return header + w.written();
}

}  // namespace tcpms::mqtt
