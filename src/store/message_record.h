// Message records: a QoS 1/2 message kept for persistent sessions, in two parts.
//
//  - MessageBody, keyed by a body id: topic, payload, the 5.0 properties forwarded to
//    subscribers, and the Message Expiry deadline. Written once per publish per loop, however
//    many persistent subscribers of that loop got the message (a fan-out to a thousand
//    sessions stores the payload once, not a thousand times).
//  - MessageRef, keyed by (client id, sequence): one session's copy: which body, the QoS and
//    RETAIN it is delivered with, its delivery state and packet id (so redelivery after a
//    restart uses the same id, with DUP [MQTT-4.4.0-1]), and the Subscription Identifiers it
//    carries to that client. Sequences grow, so a session's refs read back in the order the
//    session got them [MQTT-4.6.0-2]. A QoS 2 message whose PUBREC came (kWaitPubcomp) needs
//    only its packet id [MQTT-4.3.3-1] and refers to no body.
//
// Formats (inside the record envelope of wire.h), version 1:
//   body: u16 len, topic | u32 len, payload | u32 len, properties | u64 expires at (unix ms)
//   ref:  u64 body id | u8 QoS | u8 retain | u8 state | u16 packet id | u32 len, sub ids
//
// Pure functions, no I/O; decoders refuse what a live session cannot have.
// Thread rules: none.
#pragma once

#include <cstdint>
#include <string>

#include "mqtt/types.h"
#include "store/wire.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::store {

// The numbers match broker::OutMessage::State (asserted there).
enum class DeliveryState : uint8_t {
  kQueued = 0,       // not sent yet: no packet id
  kWaitPuback = 1,   // QoS 1 sent
  kWaitPubrec = 2,   // QoS 2 sent
  kWaitPubcomp = 3,  // QoS 2, PUBREC received, PUBREL sent: the id only
};

struct MessageBody {
  SharedBytes topic;
  SharedBytes payload;
  SharedBytes properties;     // 5.0 properties as forwarded (MessageProps::wire)
  uint64_t expires_at_ms = 0;  // unix ms; 0: no Message Expiry
};

struct MessageRef {
  uint64_t body_id = 0;  // 0 only in kWaitPubcomp
  mqtt::QoS qos = mqtt::QoS::k1;
  bool retain = false;
  DeliveryState state = DeliveryState::kQueued;
  uint16_t packet_id = 0;  // 0 only while queued
  SharedBytes subscription_ids;  // Subscription Identifier properties for this client
};

inline constexpr uint8_t kMessageBodyVersion = 1;
inline constexpr uint8_t kMessageRefVersion = 1;

void encode_message_body(const MessageBody& b, std::string& out);
Decoded<MessageBody> decode_message_body(ByteView record);
void encode_message_ref(const MessageRef& r, std::string& out);
Decoded<MessageRef> decode_message_ref(ByteView record);

// Shared by the decoders here and in the other record files: a stored topic is a valid topic
// name; stored properties parse as MQTT 5.0 properties to their end.
bool valid_stored_topic(ByteView topic) noexcept;
bool valid_stored_properties(ByteView properties) noexcept;

}  // namespace tcpms::store
