// ConnectionImage: the state of one MQTT connection moving, with its TCP socket, to the process
// that replaces this one (the upgrade handover, SIGUSR2; docs/upgrade.md). It is what
// MqttHandler::export_state writes and import_state reads: the session itself as a
// SessionImage (session_image.h: subscriptions with their options and Subscription
// Identifiers, the QoS 1/2 windows both ways, the packet id counter, the queued messages, the
// 5.0 Session Expiry Interval), plus what a session image leaves out because it belongs to the
// connection: the client id, CleanSession, the will (with its 5.0 delay), the user name the
// ACLs check, the client's 5.0 limits (Maximum Packet Size, Receive Maximum) and the inbound
// Topic Aliases it defined. Keep-alive is the connection's engine timeout and travels as such
// (HandedConnection::idle_timeout_ms). The broker sends no Topic Aliases of its own.
//
// Encoding (little endian, src/proto/wire), version 1:
//   "TCI" u8 version=1 | u8 connected (0: no CONNECT yet, nothing follows; 1: a session)
//   str16 client id | u8 flags (1 clean, 2 user name, 4 will, 8 will retain)
//   u32 connected since (wall clock s) | u32 max packet size | u16 receive maximum
//   [str16 user name] [will: u8 qos, str16 topic, str32 payload, str32 properties,
//                            u32 expiry s, u32 delay s]
//   u8 topic aliases n (at most kTopicAliasMaximum) { str16 topic, empty: alias not defined }
//   str32 session image
// A decoder refuses versions it does not know.
//
// Thread rules: pure functions and value types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "broker/session_image.h"
#include "mqtt/types.h"
#include "tcpms/bytes.h"

namespace tcpms::broker {

struct WillImage {
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  std::string topic;
  std::string payload;
  std::string props;  // forwarded 5.0 properties, as Will::props
  uint32_t expiry_s = 0;
  uint32_t delay_s = 0;
  bool operator==(const WillImage&) const = default;
};

struct ConnectionImage {
  bool connected = false;  // false: no CONNECT yet (everything below is unset)
  std::string client_id;
  bool clean = true;
  uint32_t connected_since_s = 0;
  uint32_t max_packet_size = 0;     // 5.0: the client's; 0: none
  uint16_t receive_maximum = 65535;  // 5.0: the client's
  std::optional<std::string> username;
  std::optional<WillImage> will;
  std::vector<std::string> topic_aliases;  // alias i + 1 -> topic; "" undefined
  SessionImage session;
};

inline constexpr uint8_t kConnectionImageVersion = 1;
inline constexpr size_t kMaxImageTopicAliases = 16;  // = kTopicAliasMaximum (session.h)

void encode_connection_image(const ConnectionImage& image, std::string& out, uint64_t now_ms);

struct ConnectionImageResult {
  ConnectionImage image;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
ConnectionImageResult decode_connection_image(ByteView bytes, uint64_t now_ms);

}  // namespace tcpms::broker
