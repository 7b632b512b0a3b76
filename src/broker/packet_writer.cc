// MqttHandler, what goes to a client: every packet is encoded by the codec into the loop's
// scratch buffer and enqueued, so all a client gets in one loop iteration leaves in one write;
// a PUBLISH enqueues its header and keeps the payload by reference.
#include <cstring>

#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"

namespace tcpms::broker {

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;

void MqttHandler::send_connack(Connection& c, ProtocolVersion v, bool present, uint8_t code,
                               uint32_t client_max_packet_size) {
  const ReasonCode reason =
      mqtt::from_connect_return_code(static_cast<mqtt::ConnectReturnCode>(code));
  if (is_v5(v)) {
    send_connack_v5(c, present, reason, {}, client_max_packet_size);
    return;
  }
  mqtt::Connack ack;
  ack.session_present = present && code == 0;
  ack.reason = reason;
  send_packet(c, ack, v, PacketType::kConnack);
}

void MqttHandler::send_connack_v5(Connection& c, bool present, ReasonCode code,
                                  mqtt::Properties props, uint32_t client_max_packet_size) {
  mqtt::Connack ack;
  ack.session_present = present && code == ReasonCode::kSuccess;  // [MQTT-3.2.2-6]
  ack.reason = code;
  ack.properties = props;
  // Before CONNACK the connection has no session for send_packet to check against: a refusal
  // that does not fit is not sent; the connection closes all the same [MQTT-3.1.2-24].
  if (client_max_packet_size != 0 &&
      mqtt::encoded_size(ack, ProtocolVersion::kV5) > client_max_packet_size)
    return;
  send_packet(c, ack, ProtocolVersion::kV5, PacketType::kConnack);
}

bool MqttHandler::fits_client(Connection& c, size_t packet_bytes) {
  const Session* s = session_of(c);
  if (s == nullptr || s->max_packet_size() == 0 || packet_bytes <= s->max_packet_size())
    return true;
  // Never sent [MQTT-3.1.2-24]. A PUBLISH is dropped for that client alone (send_publish);
  // anything else answers the client or ends the connection, and without it the exchange
  // cannot go on (a SUBACK for many filters to a client with a tiny limit): close.
  spdlog::debug("mqtt: client {}: a {}-byte packet exceeds its Maximum Packet Size ({}); closing",
                s->client_id(), packet_bytes, s->max_packet_size());
  c.close(CloseReason::kProtocol);
  return false;
}

void MqttHandler::send_disconnect(Connection& c, ReasonCode code) {
  mqtt::Disconnect d;
  d.reason = code;
  send_packet(c, d, ProtocolVersion::kV5, PacketType::kDisconnect);
}

void MqttHandler::send_ack(Connection& c, Session& s, PacketType t, uint16_t id, ReasonCode code) {
  mqtt::PublishResponse r;
  r.type = t;
  r.packet_id = id;
  r.reason = code;  // dropped by the 3.1.1 encoder
  send_packet(c, r, s.version, t);
}

bool MqttHandler::send_publish(Connection& c, Session& s, const Message& m,
                               const SharedBytes& sub_ids, PublishSend how) {
  const MessageProps& props = m.props;
  mqtt::Publish p;
  p.dup = how.dup;
  p.qos = how.qos;
  p.retain = how.retain;
  p.topic = as_chars(m.topic.view());
  p.packet_id = how.packet_id;
  p.payload = m.payload.view();
  uint32_t expiry_s = 0;
  if (props.expires_at_ms != 0) {
    expiry_s = expiry_left_s(props.expires_at_ms, steady_ms());
    if (expiry_s == 0) {
      if (!how.resend) return false;  // [MQTT-3.3.2-5]
      expiry_s = 1;  // already in flight: finish its handshake
    }
  }
  if (s.is_v5() && (expiry_s != 0 || !props.wire.empty() || !sub_ids.empty())) {
    // Message Expiry Interval as left now [MQTT-3.3.2-6], this subscriber's Subscription
    // Identifiers [MQTT-3.3.4-3], then the shared properties as the publisher sent them.
    props_scratch_.resize(5 + sub_ids.size() + props.wire.size());
    size_t used = 0;
    if (expiry_s != 0) {
      props_scratch_[0] = std::byte{0x02};
      for (int i = 0; i < 4; ++i)
        props_scratch_[1 + i] = static_cast<std::byte>(expiry_s >> (24 - 8 * i));
      used = 5;
    }
    if (!sub_ids.empty()) {
      std::memcpy(props_scratch_.data() + used, sub_ids.view().data(), sub_ids.size());
      used += sub_ids.size();
    }
    if (!props.wire.empty()) std::memcpy(props_scratch_.data() + used, props.wire.view().data(),
                  props.wire.size());
    used += props.wire.size();
    p.properties = mqtt::Properties(mqtt::Bytes(props_scratch_.data(), used));
  }
  size_t n = mqtt::publish_header_size(p, s.version);
  if (n == 0) return false;
  if (s.max_packet_size() != 0 && n + m.payload.size() > s.max_packet_size())
    return false;  // [MQTT-3.1.2-25]
  scratch_.resize(std::max(scratch_.size(), n));
  n = mqtt::encode_publish_header(p, s.version, mqtt::OutBytes(scratch_.data(), n));
  // The header is copied into the output queue; the payload is kept by reference.
  if (how.after_store && holds_output())
    hold_output(c, ByteView(scratch_.data(), n), m.payload, 0);
  else
    c.enqueue_shared(ByteView(scratch_.data(), n), m.payload);
  stats_.packets_out[static_cast<uint8_t>(PacketType::kPublish)].add();
  stats_.messages_out.add();
  return true;
}

}  // namespace tcpms::broker
