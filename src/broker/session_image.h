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
// Encoding (little endian), version 1:
//   "TSI" u8 version=1 | u8 protocol level | u16 last packet id
//   u32 subscriptions  { u16 len, filter, u8 qos }
//   u32 in flight      { u8 state, u8 qos, u8 retain, u16 packet id,
//                        [u16 len, topic, u32 len, payload]  (not for kWaitPubcomp) }
//   u32 queued         { u8 qos, u8 retain, u16 len, topic, u32 len, payload }
//   u32 inbound QoS 2  { u16 packet id }
// A new version bumps the byte; a decoder refuses versions it does not know.
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
  bool operator==(const ImageSubscription&) const = default;
};

struct SessionImage {
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  uint16_t last_packet_id = 0;
  std::vector<ImageSubscription> subscriptions;
  std::vector<OutMessage> inflight;  // send order; states kWaitPuback/kWaitPubrec/kWaitPubcomp
  std::vector<OutMessage> queued;    // FIFO; QoS 1/2, state kQueued
  std::vector<uint16_t> incoming;    // inbound QoS 2 ids awaiting PUBREL
};

inline constexpr uint8_t kSessionImageVersion = 1;

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
