// WebSocket frames (RFC 6455 section 5): header decode and encode, masking, close payloads,
// and the receiving side's per-connection state.
//
// Pure functions over bytes. The receiver streams data-frame payloads: it never needs a whole
// frame or message in memory, only the header (at most 14 bytes) or a control frame (at most
// 2 + 4 + 125 bytes) whole, which the caller keeps when a read ends inside one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tcpms/bytes.h"

namespace tcpms::ws {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

inline constexpr bool is_control(Opcode op) noexcept { return static_cast<uint8_t>(op) & 0x8; }

// Close status codes (RFC 6455 section 7.4.1) that we send.
enum class CloseCode : uint16_t {
  kNone = 0,               // not sent on the wire: a Close frame without a code
  kNormal = 1000,
  kGoingAway = 1001,       // server shutting down
  kProtocolError = 1002,
  kUnsupportedData = 1003,  // a text frame: MQTT travels in binary frames [MQTT-6.0.0-1]
  kInvalidPayload = 1007,   // a Close reason that is not UTF-8
  kPolicyViolation = 1008,
  kMessageTooBig = 1009,
  kInternalError = 1011,
};

inline constexpr size_t kMaxHeaderBytes = 14;      // 2 + 8 (length) + 4 (mask)
inline constexpr size_t kMaxControlPayload = 125;  // section 5.5
inline constexpr size_t kMaxControlFrameBytes = kMaxHeaderBytes + kMaxControlPayload;

struct FrameHeader {
  bool fin = false;
  Opcode opcode = Opcode::kContinuation;
  bool masked = false;
  uint8_t mask[4] = {};
  uint64_t payload_size = 0;
  uint8_t header_size = 0;  // bytes before the payload
};

enum class Status : uint8_t { kComplete, kNeedMore, kError };

struct HeaderResult {
  Status status = Status::kNeedMore;
  FrameHeader header;
  CloseCode error = CloseCode::kNone;  // the code to close with when status is kError
  const char* what = "";
};

// Decodes a frame header at the start of `data` and checks what can be checked from it alone:
// no reserved bits (no extension was negotiated), a known opcode, control frames unfragmented
// and at most 125 bytes, the length in its shortest form with the top bit clear (section
// 5.2), and the mask bit as `expect_masked` says (clients must mask, servers must not).
HeaderResult decode_header(ByteView data, bool expect_masked) noexcept;

// Writes a header into `out` (kMaxHeaderBytes); `mask` null for a server frame. Returns its
// size.
size_t encode_header(std::byte* out, Opcode opcode, bool fin, uint64_t payload_size,
                     const uint8_t* mask) noexcept;

// XORs `data` with the mask, starting at byte `offset` of the masking key (the position of
// data[0] in its frame's payload, mod 4). In place; 8 bytes at a time.
void apply_mask(std::byte* data, size_t size, const uint8_t mask[4], size_t offset) noexcept;

// A Close frame's payload: nothing, or a 2-byte code and a UTF-8 reason (section 5.5.1).
struct ClosePayload {
  bool has_code = false;
  uint16_t code = 0;
  std::string_view reason;
};
struct CloseResult {
  bool ok = false;
  ClosePayload close;
  CloseCode error = CloseCode::kNone;
  const char* what = "";
};
// Checks a received (unmasked) Close payload: length 1 is not allowed, the code must be one a
// peer may send (1000-1003, 1007-1011, 3000-4999), the reason must be UTF-8 (else 1007).
CloseResult decode_close(ByteView payload) noexcept;
// Writes a Close payload (code, then `reason` cut to fit 123 bytes) into `out` (125 bytes).
size_t encode_close(std::byte* out, CloseCode code, std::string_view reason) noexcept;

bool valid_utf8(std::string_view s) noexcept;

// What a receiver remembers between reads: where it is inside a data frame, and whether a
// fragmented message is open. Plain data, 16 bytes, so a connection can be described (or
// handed to another process) without pointers.
struct ReceiverState {
  uint64_t payload_left = 0;   // bytes of the current data frame's payload still to come
  uint8_t mask[4] = {};
  uint8_t mask_offset = 0;     // position in the mask of the next payload byte
  bool in_message = false;     // a data frame without FIN was received: continuations follow
  bool in_frame = false;       // inside a data frame's payload (payload_left may be 0 at FIN)
  bool masked = false;         // the current frame's payload is masked (client to server)
};

// One step of receiving. Call with the bytes not yet consumed; act on the step; repeat.
struct Step {
  enum Kind : uint8_t {
    kData,     // `payload` (inside `data`, unmasked in place) is message bytes
    kControl,  // a whole control frame: `opcode`, `payload` (unmasked in place)
    kNeedMore, // the rest is an incomplete header or control frame: keep it, read more
    kError,    // close with `error`
  };
  Kind kind = kNeedMore;
  Opcode opcode = Opcode::kBinary;
  MutableByteView payload;
  size_t consumed = 0;  // bytes of `data` this step used
  CloseCode error = CloseCode::kNone;
  const char* what = "";
};

// Receives from `data` (mutable: payloads are unmasked in place). Data frames' payloads come
// out as kData steps as they arrive, possibly in pieces; text frames are refused (1003), since
// MQTT travels only in binary frames [MQTT-6.0.0-1]. `max_frame_bytes` (0: no limit) refuses
// larger data frames with 1009.
Step receive(ReceiverState& state, MutableByteView data, bool expect_masked,
             uint64_t max_frame_bytes) noexcept;

}  // namespace tcpms::ws
