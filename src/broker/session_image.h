// SessionImage: the portable state of one persistent MQTT session (3.1.1 §4.1), as bytes that
// can travel to another process (Router::fetch_session, Broker::export_session/adopt_session).
//
// What travels: the protocol version, the subscriptions (filter, granted QoS), the outbound
// QoS 1/2 messages in flight (with their packet ids and handshake states, so redelivery after
// the move resends them with DUP and the same id [MQTT-4.4.0-1]), the queued messages, the
// inbound QoS 2 packet ids awaiting PUBREL (so a resent PUBLISH is not delivered twice
// [MQTT-4.3.3-2]), and the last packet id used. What does not: the will and the user name
// (both belong to the connection, and the new CONNECT brings its own), rate buckets.
//
// Encoding (little endian), version 2: the store's own records (src/store/*_record.h: each
// versioned and CRC-checked), so a session has one format whether it is kept on disk or sent
// to another process:
//   "TSI" u8 version=2
//   u32 len, SessionRecord          (level, expiry never, offline since 0, last packet id)
//   u32 subscriptions  { u16 len, filter, u32 len, SubscriptionRecord }
//   u32 in flight      { u32 len, MessageRef, u32 len, MessageBody (empty for kWaitPubcomp) }
//   u32 queued         { u32 len, MessageRef, u32 len, MessageBody }
//   u32 inbound QoS 2  { u16 packet id }
// A ref's body id is 1 ("the body that follows"), 0 in kWaitPubcomp; bodies carry no expiry
// (a deadline of this process's clock means nothing to another). A new version bumps the
// byte; a decoder refuses versions it does not know.
//
// Pure functions, no I/O. decode_session_image never reads past its input and refuses
// anything inconsistent (unknown state, QoS out of range, duplicate or zero packet ids,
// invalid topics, trailing bytes) with a static message: the bytes come from another process
// and are treated as untrusted.
//
// Thread rules: none (no shared state).
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
  uint8_t options = 0;           // SubRecord::options (5.0)
  uint32_t subscription_id = 0;  // 5.0 Subscription Identifier; 0: none
  bool operator==(const ImageSubscription&) const = default;
};

struct SessionImage {
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  uint16_t last_packet_id = 0;
  std::vector<ImageSubscription> subscriptions;
  // Messages keep their forwarded properties (MessageProps::wire) and Subscription
  // Identifiers, not their expiry.
  std::vector<OutMessage> inflight;  // send order; states kWaitPuback/kWaitPubrec/kWaitPubcomp
  std::vector<OutMessage> queued;    // FIFO; QoS 1/2, state kQueued
  std::vector<uint16_t> incoming;    // inbound QoS 2 ids awaiting PUBREL
};

inline constexpr uint8_t kSessionImageVersion = 2;

// Appends the encoding of `image` to `out`. Entries the decoder would refuse (a topic over
// 65,535 bytes, say) cannot come from a live session; they are encoded as given.
void encode_session_image(const SessionImage& image, std::string& out);

// Result of decoding: `error` is null on success, else a static description.
struct SessionImageResult {
  SessionImage image;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
SessionImageResult decode_session_image(ByteView bytes);

}  // namespace tcpms::broker
