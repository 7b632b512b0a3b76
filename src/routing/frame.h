// Frames of the routing layer: everything that crosses between tcpms processes (worker
// processes on one box, nodes through Redis). One versioned format for every transport; the
// transport carries each frame whole and says which peer sent it.
//
//   [u8 version = 1][u8 kind][body]          little endian (src/proto/wire)
//
// Bodies, by kind (str16 = u16 length + bytes; "rest" = to the end of the frame):
//   Hello            u64 incarnation, u32 interest slots, u8 interest hashes
//   Publish          message
//   InterestSnapshot u32 slots, u8 flags, shapes, bitmap of slots/8 bytes
//   InterestDelta    u32 slots, u8 flags, shapes, u32 n, n x u32 (slot | 1 << 31 when set)
//   shapes           u8 n, n x u64: the wildcard shapes the sender's filters use
//                    (interest_keys.h); flags & 1: it has more than fit (match it always)
//   ClaimRequest     u64 request, u8 flags, str16 client id
//   ClaimAnswer      u64 request, u32 ticket, u16 previous holder, u32 previous ticket, u8 flags
//   Surrender        u64 request, u16 new holder, u32 ticket, u8 flags, str16 client id
//   SessionImage     u64 request, u8 flags, str16 client id, rest: the image
//   Release          u32 ticket, str16 client id
//   Register         u32 ticket, str16 client id
//   ById             u64 request, u16 reply to, u8 op, u8 hops, str16 client id, rest: body
//   Reply            u64 request, u8 status, rest: body
//   Query            u64 request, u8 what, rest: arguments
//   QueryAnswer      u64 request, u8 status, rest: body
//   SharedGroup      u8 joined, str16 group (share name), str16 filter
//   SharedDeliver    u8 hops, str16 group, str16 filter, message
//   InterestRelay    u16 n, n x (u16 origin, str32 frame): interest updates of several peers,
//                    forwarded by the interest hub (peer_router.h)
//   DurablePublish   u64 request, u8 hops, str16 group, str16 filter, message: a Publish (group
//                    and filter empty) or a SharedDeliver whose sender waits for a Reply (kDone
//                    once it is durable where it was delivered, persistence.sync = every-message)
//   InterestMark     u64 number: the sender's interest updates up to `number` are sent before
//                    this frame; the receiver answers InterestApplied with it
//   InterestApplied  u64 number: the updates a mark numbered have been applied
//   DrainMark        u32 epoch: the upgrade handover with worker processes (docs/upgrade.md):
//                    the sender holds its clients' input and sends nothing more from them;
//                    every frame it sent before this one has reached the receiver
//   message          u8 qos | retain << 2, u32 expiry left ms (0: none), str16 topic,
//                    str32 properties (5.0, as forwarded), rest: payload
//
// What each kind does is in peer_router.h. A frame of an unknown version or kind, or one that
// does not decode, is dropped and counted by the receiver: frames come from another process and
// are treated as untrusted. A newer process adds kinds; an older one skips them.
//
// Thread rules: pure functions and value types. Decoded frames hold views into the input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "broker/message.h"
#include "mqtt/types.h"
#include "tcpms/bytes.h"

namespace tcpms::routing {

inline constexpr uint8_t kFrameVersion = 1;

// A process in the routing layer: a worker of this server, or a node of the cluster.
using PeerId = uint16_t;
inline constexpr PeerId kNoPeer = 0xFFFF;

enum class FrameKind : uint8_t {
  kHello = 1,
  kPublish = 2,
  kInterestSnapshot = 3,
  kInterestDelta = 4,
  kClaim = 5,
  kClaimAnswer = 6,
  kSurrender = 7,
  kSessionImage = 8,
  kRelease = 9,
  kRegister = 10,
  kById = 11,
  kReply = 12,
  kQuery = 13,
  kQueryAnswer = 14,
  kSharedGroup = 15,
  kSharedDeliver = 16,
  kInterestRelay = 17,
  kDurablePublish = 18,
  kInterestMark = 19,
  kInterestApplied = 20,
  kDrainMark = 21,
  kLastKind = kDrainMark,  // a kind above it is a newer process's
};

// A published message as it crosses: views into the frame. expiry_left_ms is the time left
// when the frame was built (clocks of two machines are not compared).
struct MessageView {
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  uint32_t expiry_left_ms = 0;  // 0: no Message Expiry
  std::string_view topic;
  ByteView props;
  ByteView payload;
};

struct Hello {
  uint64_t incarnation = 0;  // a new value: the sender restarted (forget what it held)
  uint32_t interest_slots = 0;
  uint8_t interest_hashes = 0;
};
struct Publish {
  MessageView message;
};
// The wildcard shapes a peer's filters use, as they travel: n x u64.
struct ShapeList {
  ByteView bytes;
  size_t count() const noexcept { return bytes.size() / 8; }
  uint64_t at(size_t i) const noexcept;
};
inline constexpr uint8_t kInterestOverflow = 1;  // more shapes than a frame carries
inline constexpr size_t kMaxShapesPerPeer = 64;

struct InterestSnapshot {
  uint32_t slots = 0;
  uint8_t flags = 0;
  ShapeList shapes;
  ByteView bitmap;  // slots / 8 bytes, slot i in bit i % 8 of byte i / 8
};
struct InterestDelta {
  uint32_t slots = 0;  // the size of the sender's bitmap these slots index
  uint8_t flags = 0;
  ShapeList shapes;
  ByteView changes;  // n x u32: slot | kSet
  static constexpr uint32_t kSet = 1u << 31;
  size_t count() const noexcept { return changes.size() / 4; }
  uint32_t at(size_t i) const noexcept;
};
struct ClaimRequest {
  uint64_t request = 0;
  uint8_t flags = 0;
  std::string_view client_id;
  static constexpr uint8_t kPersistent = 1;  // wants the session the id may have elsewhere
};
struct ClaimAnswer {
  uint64_t request = 0;
  uint32_t ticket = 0;
  PeerId previous = kNoPeer;  // who held the id before this claim
  uint32_t previous_ticket = 0;
  uint8_t flags = 0;
  static constexpr uint8_t kImageComing = 1;  // the previous holder was asked for the session
};
struct Surrender {
  uint64_t request = 0;     // the claimer's request, echoed in the SessionImage
  PeerId to = kNoPeer;      // the claimer
  uint32_t ticket = 0;      // the session to give up (a holder with another ticket ignores it)
  uint8_t flags = 0;
  std::string_view client_id;
  static constexpr uint8_t kWantImage = 1;
};
struct SessionImage {
  uint64_t request = 0;
  uint8_t flags = 0;
  std::string_view client_id;
  ByteView image;  // broker/session_image.h; empty without kHasImage
  static constexpr uint8_t kHasImage = 1;
};
struct Release {
  uint32_t ticket = 0;
  std::string_view client_id;
};
struct Register {
  uint32_t ticket = 0;
  std::string_view client_id;
};
// A request about one client id, sent to the id's home, which forwards it to the holder.
enum class ByIdOp : uint8_t { kPush = 1, kKick = 2, kInfo = 3, kDropSession = 4 };
struct ById {
  uint64_t request = 0;
  PeerId reply_to = kNoPeer;
  ByIdOp op = ByIdOp::kPush;
  uint8_t hops = 0;  // 0: to the home; 1: from the home to the holder
  std::string_view client_id;
  ByteView body;  // kPush: a message (see encode_message_body)
};
enum class ReplyStatus : uint8_t { kDone = 0, kQueued = 1, kNoSuchClient = 2, kFailed = 3 };
struct Reply {
  uint64_t request = 0;
  ReplyStatus status = ReplyStatus::kDone;
  ByteView body;
};
enum class QueryWhat : uint8_t { kMetrics = 1, kClients = 2, kStats = 3, kRetained = 4 };
struct Query {
  uint64_t request = 0;
  QueryWhat what = QueryWhat::kMetrics;
  ByteView args;
};
struct QueryAnswer {
  uint64_t request = 0;
  uint8_t status = 0;
  ByteView body;
};
struct SharedGroup {
  bool joined = false;  // the sender has its first member of the group / lost its last
  std::string_view group;
  std::string_view filter;
};
struct SharedDeliver {
  uint8_t hops = 0;
  std::string_view group;
  std::string_view filter;
  MessageView message;
};

// A Publish (group and filter empty) or a SharedDeliver whose sender holds its publisher's
// acknowledgement until the receiver answers Reply{request, kDone} (after its store commit) or
// the request fails (peer_router.h).
struct DurablePublish {
  uint64_t request = 0;
  uint8_t hops = 0;
  std::string_view group;
  std::string_view filter;
  MessageView message;
  bool shared() const noexcept { return !group.empty(); }
};

// The subscribing side's question "have you applied my interest updates up to `number`?", and
// its answer: what lets a SUBACK wait until every peer knows the new filter (peer_router.h).
// Through the hub, the hub marks its relays with numbers of its own and answers each subscriber
// once every peer has applied the relay that carried its update.
struct InterestMark {
  uint64_t number = 0;
};
struct InterestApplied {
  uint64_t number = 0;
};

// Before a worker hands its clients over to its successor (docs/upgrade.md, "Worker
// processes"): it has stopped reading from them, so nothing it sends after this mark comes
// from a client; the epoch names the handover (the new supervisor's pid).
struct DrainMark {
  uint32_t epoch = 0;
};

// Interest updates (InterestSnapshot or InterestDelta frames) of several peers in one frame,
// and the hub's own InterestMark after them.
struct InterestRelay {
  ByteView entries;  // n x (u16 origin, str32 frame), checked by decode
  uint16_t count = 0;
  struct Entry {
    PeerId origin;
    ByteView frame;
  };
  // Calls f(Entry) for each.
  template <typename F>
  void for_each(F&& f) const;
};
// Appends one entry to an InterestRelay's entries being built.
void append_relay_entry(std::string& entries, PeerId origin, ByteView frame);

using Frame = std::variant<Hello, Publish, InterestSnapshot, InterestDelta, ClaimRequest, ClaimAnswer,
                           Surrender, SessionImage, Release, Register, ById, Reply, Query,
                           QueryAnswer, SharedGroup, SharedDeliver, InterestRelay, DurablePublish,
                           InterestMark, InterestApplied, DrainMark>;

// Appends the frame's bytes to `out`.
void encode(const Frame& f, std::string& out);
std::string encode(const Frame& f);
// Views into `bytes`; nullopt for another version, an unknown kind, or anything malformed
// (truncated, trailing bytes, QoS over 2, flags out of range).
std::optional<Frame> decode(ByteView bytes);
// The kind byte, without decoding the rest (counting, skipping).
std::optional<FrameKind> peek_kind(ByteView bytes);

// A message's view for a frame: the expiry as the time left at `now_ms` (steady clock).
MessageView view_of(const broker::Message& m, uint64_t now_ms);
// A message from a decoded view, with its own copies of the bytes; the expiry counted from
// `now_ms`.
broker::Message message_of(const MessageView& v, uint64_t now_ms);
// A message as a ById push's body, and back.
std::string encode_message_body(const MessageView& m);
std::optional<MessageView> decode_message_body(ByteView body);

template <typename F>
void InterestRelay::for_each(F&& f) const {
  size_t at = 0;
  for (uint16_t i = 0; i < count; ++i) {
    const auto byte = [&](size_t k) { return static_cast<uint32_t>(entries[at + k]); };
    const PeerId origin = static_cast<PeerId>(byte(0) | byte(1) << 8);
    const uint32_t n = byte(2) | byte(3) << 8 | byte(4) << 16 | byte(5) << 24;
    f(Entry{origin, entries.subspan(at + 6, n)});
    at += 6 + n;
  }
}

}  // namespace tcpms::routing
