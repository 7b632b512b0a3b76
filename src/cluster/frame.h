// Frames that cross between tcpms nodes through Redis: node streams and the ctl channel.
//
// One layout for every kind, so one decoder serves them all and a newer node's frame kind is
// skipped, not misread:
//
//   [u8 version=1][u8 kind][u8 flags][u16 node][node][u16 arg][arg][u16 topic][topic][payload]
//
// lengths little endian; flags = QoS | retain << 2; `node` is the sender; `arg` is a filter
// (route events) or a client id (push, connected, session moves); the payload is the rest of
// the message, so it has no 64 KiB limit (a session image with its queued messages can be
// megabytes; Redis takes up to 512 MB per entry). Messages go to the node's stream
// "<prefix>stream:<node>" (publish, push, session moves) or channel "<prefix>ctl" (the rest).
//
// Thread rules: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mqtt/types.h"

namespace tcpms::cluster {

enum class FrameKind : uint8_t {
  kPublish = 1,      // a local publish for the receiver's subscribers (retained: stored too)
  kPush = 2,         // to one client id, subscribed or not
  kRouteAdd = 3,     // node gained filter `arg`
  kRouteRemove = 4,  // node lost filter `arg`
  kHello = 5,        // node (re)wrote its routes and registry: reload them
  kBye = 6,          // node leaves cleanly: forget it now rather than at lease expiry
  kConnected = 7,    // client `arg` connected on node: a holder elsewhere closes it (takeover)
  // Moving a persistent session (node streams): `node` is the sender, `arg` the client
  // id, `topic` the requester's request id (decimal).
  kSessionRequest = 8,  // node asks the receiver for client `arg`'s session
  kSession = 9,         // the answer: the session image (broker/session_image.h) is the payload
  kNoSession = 10,      // the answer: the receiver holds no session for `arg` (any more)
};

struct Frame {
  FrameKind kind{};
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  std::string_view node;
  std::string_view arg;
  std::string_view topic;
  std::string_view payload;
};

inline constexpr uint8_t kFrameVersion = 1;

// A control event: route change, hello, bye, connected.
std::string encode_event(FrameKind kind, std::string_view node, std::string_view arg = {});
// A publish (arg empty) or a push to client `arg`.
std::string encode_message(FrameKind kind, std::string_view node, std::string_view arg,
                           std::string_view topic, std::string_view payload, mqtt::QoS qos,
                           bool retain);

// Fields longer than 65535 bytes do not fit; MQTT topics and client ids never are.
std::string encode_frame(const Frame& f);
// Views into `bytes`; nullopt if truncated, of another version, or with a QoS over 2.
std::optional<Frame> decode_frame(std::string_view bytes);

}  // namespace tcpms::cluster
