// SessionImage: the portable state of one persistent MQTT session (3.1.1 §4.1), as bytes that
// can travel to another process (Router::fetch_session, Broker::export_session/adopt_session).
//
// What travels: the protocol version, the subscriptions (filter, granted QoS, 5.0 options
// and Subscription Identifier), the outbound QoS 1/2 messages in flight (with their packet ids
// and handshake states, so redelivery after the move resends them with DUP and the same id
// [MQTT-4.4.0-1]), the queued messages (with their 5.0 properties, the time left before they
// expire, and the subscriber's Subscription Identifiers), the inbound QoS 2 packet ids
// awaiting PUBREL (so a resent PUBLISH is not delivered twice [MQTT-4.3.3-2]), the last
// packet id used, and a 5.0 session's Session Expiry Interval. What does not: the will and
// the user name (both belong to the connection, and the new CONNECT brings its own; a session
// that continues elsewhere drops its delayed will [MQTT-3.1.3-9]), rate buckets, topic
// aliases (per connection).
//
// Encoding (little endian, src/proto/wire), version 2:
//   "TSI" u8 version=2 | u8 protocol level (3, 4, 5) | u16 last packet id
//   u32 session expiry interval (5.0; 0 otherwise)
//   u32 subscriptions  { str16 filter, u8 qos, u8 options, u32 subscription id }
//   u32 in flight      { u8 state, u8 qos, u8 retain, u16 packet id,
//                        [message]  (not for kWaitPubcomp) }
//   u32 queued         { u8 qos, u8 retain, message }
//   u32 inbound QoS 2  { u16 packet id }
//   message = str16 topic, str32 payload, str32 properties, u32 expiry left ms (0: none),
//             str16 subscription identifier properties
// Version 1 (3.x only, no options, no properties) is still decoded, so a newer process can
// take a session from an older one; a decoder refuses versions it does not know.
//
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker/inflight.h"
#include "mqtt/types.h"
#include "tcpms/bytes.h"

namespace tcpms::broker {

struct ImageSubscription {
  std::string filter;
  mqtt::QoS qos = mqtt::QoS::k0;
  uint8_t options = 0;           // SubRecord options (kSubNoLocal, kSubRetainAsPublished)
  uint32_t subscription_id = 0;  // 5.0 Subscription Identifier; 0: none
  bool operator==(const ImageSubscription&) const = default;
};

struct SessionImage {
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  uint16_t last_packet_id = 0;
  uint32_t session_expiry_s = 0;  // 5.0 Session Expiry Interval
  std::vector<ImageSubscription> subscriptions;
  std::vector<OutMessage> inflight;  // send order; states kWaitPuback/kWaitPubrec/kWaitPubcomp
  std::vector<OutMessage> queued;    // FIFO; QoS 1/2, state kQueued
  std::vector<uint16_t> incoming;    // inbound QoS 2 ids awaiting PUBREL
};

inline constexpr uint8_t kSessionImageVersion = 2;

// Appends the encoding of `image` to `out`; message expiry deadlines are written as the time
// left at `now_ms` (steady clock) and read back against the decoder's `now_ms`. Entries the decoder would refuse (a topic over
// 65,535 bytes, say) cannot come from a live session; they are encoded as given.
void encode_session_image(const SessionImage& image, std::string& out, uint64_t now_ms);

// Result of decoding: `error` is null on success, else a static description.
struct SessionImageResult {
  SessionImage image;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
SessionImageResult decode_session_image(ByteView bytes, uint64_t now_ms);

}  // namespace tcpms::broker
