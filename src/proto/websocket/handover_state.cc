#include "websocket/handover_state.h"

#include <algorithm>
#include <cstring>

namespace tcpms::ws {
namespace {

// What receive() leaves behind, from its code (frame.cc):
// - in_frame only with payload left: the step that takes a frame's last byte leaves it, and
//   a data frame of no payload is left in the step that read its header;
// - payload_left, then, is 0 outside a frame, and a frame is at most 2^63 - 1 bytes;
// - mask, mask_offset and masked outlive their frame, until the next data header: a
//   connection's frames are all masked or none is, so `masked` differs from `expect_masked`
//   only before the first data frame (all zero then), and an unmasked frame has a zero mask;
// - bytes are kept only when receive() said kNeedMore, which it says only outside a frame,
//   for an incomplete header (at most 13 bytes) or control frame (at most 130): never a
//   whole frame, never one it would refuse on what it has.
const char* check(const net::handover::WebSocketState& s, bool expect_masked) noexcept {
  if (s.mask_offset > 3) return "mask offset past the mask";
  const bool zero_mask = std::all_of(s.mask.begin(), s.mask.end(), [](uint8_t b) { return b == 0; });
  if (!s.masked && !zero_mask) return "a mask on unmasked frames";
  if (s.masked && !expect_masked) return "masked frames on a connection whose frames are not";
  if (s.in_frame) {
    if (s.payload_left == 0) return "inside a frame with no payload left";
    if (s.payload_left >> 63) return "more payload left than a frame can have";
    if (s.masked != expect_masked) return "unmasked frames on a connection whose frames are masked";
    if (!s.stash.empty()) return "a frame header or control frame kept inside a frame's payload";
    return nullptr;
  }
  if (s.payload_left != 0) return "payload left outside a frame";
  if (expect_masked && !s.masked && s.mask_offset != 0)
    return "a mask offset before the first frame";
  if (s.stash.empty()) return nullptr;
  if (s.stash.size() > kMaxControlFrameBytes) return "kept bytes longer than a control frame";
  const HeaderResult h = decode_header(as_bytes(std::string_view(s.stash)), expect_masked);
  if (h.status == Status::kNeedMore) return nullptr;
  if (h.status == Status::kError) return "kept bytes the receiver refuses";
  if (!is_control(h.header.opcode)) return "a whole data frame header kept";
  if (h.header.header_size + h.header.payload_size <= s.stash.size()) return "a whole control frame kept";
  return nullptr;
}

}  // namespace

net::handover::WebSocketState export_state(const ReceiverState& state, ByteView stash) {
  net::handover::WebSocketState s;
  s.payload_left = state.payload_left;
  std::memcpy(s.mask.data(), state.mask, sizeof state.mask);
  s.mask_offset = state.mask_offset;
  s.in_message = state.in_message;
  s.in_frame = state.in_frame;
  s.masked = state.masked;
  s.stash.assign(as_chars(stash));
  return s;
}

const char* import_state(const net::handover::WebSocketState& s, bool expect_masked,
                         ReceiverState& state) noexcept {
  if (const char* why = check(s, expect_masked)) return why;
  state.payload_left = s.payload_left;
  std::memcpy(state.mask, s.mask.data(), sizeof state.mask);
  state.mask_offset = s.mask_offset;
  state.in_message = s.in_message;
  state.in_frame = s.in_frame;
  state.masked = s.masked;
  return nullptr;
}

}  // namespace tcpms::ws
