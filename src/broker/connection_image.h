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

// Items of the handover's State frame (src/proto/handover/handover_frame.h): what is on no connection,
// first byte its kind, second its version (1):
//   'R' retained: str16 topic, str32 payload, str32 properties, u8 qos, u32 expiry left ms
//   'S' offline session: str16 client id, u64 ms until it expires (0: never), u8 delayed will
//       (0 none, 1 yes, 3 yes with retain) [will as in a connection image], u64 ms until the
//       delayed will goes out, str32 session image
inline constexpr char kRetainedItem = 'R';
inline constexpr char kOfflineSessionItem = 'S';
inline constexpr uint8_t kUpgradeItemVersion = 1;

struct RetainedImage {
  std::string topic;
  std::string payload;
  std::string props;  // forwarded 5.0 properties
  mqtt::QoS qos = mqtt::QoS::k0;
  uint32_t expiry_left_ms = 0;  // 0: none
};
void encode_retained_item(const RetainedImage& image, std::string& out);
struct RetainedItemResult {
  RetainedImage image;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
RetainedItemResult decode_retained_item(ByteView bytes);

struct OfflineSessionImage {
  std::string client_id;
  uint64_t expires_in_ms = 0;  // 5.0: until the session expires; 0: never
  std::optional<WillImage> delayed_will;
  uint64_t will_in_ms = 0;
  SessionImage session;
};
void encode_offline_item(const OfflineSessionImage& image, std::string& out, uint64_t now_ms);
struct OfflineItemResult {
  OfflineSessionImage image;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
OfflineItemResult decode_offline_item(ByteView bytes, uint64_t now_ms);

}  // namespace tcpms::broker
