// Message: one published message as it travels the publish path (a client's PUBLISH, a will,
// a control-plane publish, a retained message sent on subscribe, a message from another
// process). Built once per publish and passed by reference; topic, payload and properties are
// SharedBytes, so every subscriber (on any loop) shares one copy of each.
//
// PublishSend: what differs when that message goes to one subscriber, once.
//
// Thread rules: value types; SharedBytes may be shared by any threads.
#pragma once

#include <cstdint>
#include <span>

#include "broker/message_props.h"
#include "mqtt/types.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

struct Message {
  SharedBytes topic;
  SharedBytes payload;
  MessageProps props;  // 5.0: forwarded properties and the expiry deadline
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;  // the publisher's RETAIN flag
};

struct PublishSend {
  mqtt::QoS qos = mqtt::QoS::k0;  // as granted to this subscriber
  bool retain = false;            // the RETAIN flag it gets [MQTT-3.3.1-8], [MQTT-3.3.1-9]
  bool dup = false;               // a resend [MQTT-3.3.1-1]
  // Already in flight: an expired message still goes (with 1 s left) to finish its handshake.
  bool resend = false;
  uint16_t packet_id = 0;
  // Leaves only once the store has this message's packet id and state (QoS 2 to a stored
  // session under every-message sync: durable_gate.h).
  bool after_store = false;
};

// Subscription Identifier properties (0x0B) for each id, as a subscriber's copy carries them
// [MQTT-3.3.4-4]; empty for none.
SharedBytes subscription_id_props(std::span<const uint32_t> ids);

}  // namespace tcpms::broker
