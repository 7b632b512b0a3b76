// The MQTT client side the bench's MQTT drivers share (mqtt_driver.cc, mqtt_reach_driver.cc):
// packets encoded into one scratch buffer and queued on a connection, and the verdicts on a
// CONNACK and a SUBACK as failure causes (docs/bench.md lists them).
//
// Threads: one per driver, on its loop's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/packet.h"
#include "tcpms/connection.h"

namespace tcpms::benchapp {

class MqttClientWire {
 public:
  // `largest_payload`: the biggest PUBLISH payload this driver sends.
  MqttClientWire(mqtt::ProtocolVersion version, size_t largest_payload);

  mqtt::ProtocolVersion version() const noexcept { return version_; }

  // Each queues one packet on `conn` and returns its size in bytes.
  // CONNECT (CleanSession / Clean Start `clean`); the user name and password when not empty.
  size_t connect(Connection& conn, std::string_view client_id, uint16_t keep_alive_s, bool clean,
                 std::string_view username = {}, std::string_view password = {});
  // SUBSCRIBE to one filter, packet id 1 (suback_refusal checks the answer).
  size_t subscribe(Connection& conn, std::string_view filter, mqtt::QoS qos);
  // PUBACK, PUBREC, PUBREL or PUBCOMP.
  size_t ack(Connection& conn, mqtt::PacketType type, uint16_t packet_id);
  size_t publish(Connection& conn, const mqtt::Publish& p);
  size_t pingreq(Connection& conn);

 private:
  size_t enqueue(Connection& conn, size_t n);

  const mqtt::ProtocolVersion version_;
  std::vector<std::byte> scratch_;
};

// Empty when the CONNACK accepts the connection; else "connack_rc_<3.1.1 return code>".
std::string connack_refusal(const mqtt::Connack& ack);
// Empty when the SUBACK grants the one filter subscribe() asked for; else "suback_mismatch"
// or "suback_refused_0x..".
std::string suback_refusal(const mqtt::Suback& ack);

}  // namespace tcpms::benchapp
