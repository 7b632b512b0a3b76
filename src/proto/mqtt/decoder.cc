#include "mqtt/decoder.h"

namespace tcpms::mqtt {
namespace {

template <class T>
Decoded<Packet> widen(Decoded<T> d) noexcept {
  if (!d) return d.error();
  return Packet(std::move(d.value()));
}

}  // namespace

Decoded<Packet> decode_packet(const FixedHeader& h, Bytes body, ProtocolVersion v) noexcept {
  switch (h.type) {
    case PacketType::kConnect: return widen(decode_connect(body));
    case PacketType::kConnack: return widen(decode_connack(body, v));
    case PacketType::kPublish: return widen(decode_publish(h.flags, body, v));
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return widen(decode_publish_response(h.type, body, v));
    case PacketType::kSubscribe: return widen(decode_subscribe(body, v));
    case PacketType::kSuback: return widen(decode_suback(body, v));
    case PacketType::kUnsubscribe: return widen(decode_unsubscribe(body, v));
    case PacketType::kUnsuback: return widen(decode_unsuback(body, v));
    case PacketType::kPingreq:
      return body.empty() ? Decoded<Packet>(Packet(Pingreq{})) : malformed("PINGREQ with a body");
    case PacketType::kPingresp:
      return body.empty() ? Decoded<Packet>(Packet(Pingresp{})) : malformed("PINGRESP with a body");
    case PacketType::kDisconnect: return widen(decode_disconnect(body, v));
    case PacketType::kAuth: return widen(decode_auth(body, v));
  }
  return malformed("packet type 0 is reserved");
}

}  // namespace tcpms::mqtt
