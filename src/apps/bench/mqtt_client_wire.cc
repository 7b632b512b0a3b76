#include "mqtt_client_wire.h"

#include <fmt/format.h>

#include "mqtt/encoder.h"

namespace tcpms::benchapp {

MqttClientWire::MqttClientWire(mqtt::ProtocolVersion version, size_t largest_payload)
    : version_(version), scratch_(largest_payload + 512) {}

size_t MqttClientWire::connect(Connection& conn, std::string_view client_id, uint16_t keep_alive_s, bool clean,
                               std::string_view username, std::string_view password) {
  mqtt::Connect c;
  c.version = version_;
  c.clean_start = clean;
  c.keep_alive_s = keep_alive_s;
  c.client_id = client_id;
  if (!username.empty()) c.username = username;
  if (!password.empty()) c.password = mqtt::Bytes(reinterpret_cast<const std::byte*>(password.data()), password.size());
  return enqueue(conn, mqtt::encode(c, scratch_));
}

size_t MqttClientWire::subscribe(Connection& conn, std::string_view filter, mqtt::QoS qos) {
  mqtt::Subscription s{filter, {qos}};
  return enqueue(conn, mqtt::encode_subscribe(1, std::span(&s, 1), {}, version_, scratch_));
}

size_t MqttClientWire::ack(Connection& conn, mqtt::PacketType type, uint16_t packet_id) {
  mqtt::PublishResponse a;
  a.type = type;
  a.packet_id = packet_id;
  return enqueue(conn, mqtt::encode(a, version_, scratch_));
}

size_t MqttClientWire::publish(Connection& conn, const mqtt::Publish& p) {
  return enqueue(conn, mqtt::encode(p, version_, scratch_));
}

size_t MqttClientWire::pingreq(Connection& conn) { return enqueue(conn, mqtt::encode(mqtt::Pingreq{}, version_, scratch_)); }

size_t MqttClientWire::enqueue(Connection& conn, size_t n) {
  conn.enqueue(ByteView(scratch_.data(), n));
  return n;
}

std::string connack_refusal(const mqtt::Connack& ack) {
  if (ack.reason == mqtt::ReasonCode::kSuccess) return {};
  return fmt::format("connack_rc_{}", static_cast<int>(mqtt::to_connect_return_code(ack.reason)));
}

std::string suback_refusal(const mqtt::Suback& ack) {
  if (ack.packet_id != 1 || ack.reason_codes.size() != 1) return "suback_mismatch";
  const auto granted = static_cast<uint8_t>(ack.reason_codes[0]);
  if (granted >= 0x80) return fmt::format("suback_refused_{:#04x}", granted);
  return {};
}

}  // namespace tcpms::benchapp
