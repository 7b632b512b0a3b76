// libFuzzer target for a WebSocket receiver's state arriving in the upgrade handover
// (src/proto/websocket/handover_state.h): another process's word, imported, then received on
// the way the engine receives (src/net/transport.cc, websocket_input).
//
// Input layout: byte 0 picks whether frames are expected masked (bit 0) and the read sizes
// the wire is cut into (bits 1-5, 0: one read); then a state: u64 payload left (little
// endian), 4 mask bytes, u8 mask offset, u8 flags (1 in a message, 2 in a frame, 4 masked),
// u8 kept-bytes length and the kept bytes; the rest is the client's wire.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - a refusal says why; an accepted state exports back to what was imported;
//  - from an accepted state, receiving never reads or writes outside its bytes (ASan, UBSan);
//  - the engine's kept-bytes path holds: joining kept bytes and new ones either still needs
//    more (having taken every new byte) or consumes past every kept byte (websocket_input
//    subtracts them), and what is kept again fits kMaxControlFrameBytes;
//  - the message bytes received do not depend on how the wire is cut into reads.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "websocket/frame.h"
#include "websocket/handover_state.h"

namespace {

using namespace tcpms;
using namespace tcpms::ws;

void check(bool ok) {
  if (!ok) std::abort();
}

// Receives `wire` in reads of `cut` bytes (0: one read) from `state` and `kept`, the way
// websocket_input does; returns the message bytes and control payloads, or stops at an error.
std::string run(ReceiverState state, std::vector<std::byte> kept, const std::vector<std::byte>& wire,
                size_t cut, bool masked, bool& failed) {
  std::string out;
  failed = false;
  auto take = [&out](const Step& s) {
    if (s.kind == Step::kControl) out += "|ctl:";
    out.append(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
  };
  std::vector<std::byte> read;
  for (size_t at = 0; at < wire.size();) {
    const size_t n = cut == 0 ? wire.size() - at : std::min(cut, wire.size() - at);
    read.assign(wire.begin() + static_cast<long>(at), wire.begin() + static_cast<long>(at + n));
    at += n;
    MutableByteView in(read);
    if (!kept.empty()) {
      const size_t had = kept.size();
      check(had <= kMaxControlFrameBytes);
      const size_t add = std::min(in.size(), kMaxControlFrameBytes - had);
      kept.insert(kept.end(), in.begin(), in.begin() + static_cast<long>(add));
      Step s = receive(state, MutableByteView(kept), masked, 0);
      if (s.kind == Step::kNeedMore) {
        check(add == in.size());  // the engine drops what it did not add
        continue;
      }
      if (s.kind == Step::kError) {
        failed = true;
        return out;
      }
      check(s.consumed > had && s.consumed - had <= add);
      take(s);
      in = in.subspan(s.consumed - had);
      kept.clear();
    }
    for (size_t off = 0; off < in.size();) {
      Step s = receive(state, in.subspan(off), masked, 0);
      if (s.kind == Step::kNeedMore) {
        check(in.size() - off <= kMaxControlFrameBytes);
        kept.assign(in.begin() + static_cast<long>(off), in.end());
        break;
      }
      if (s.kind == Step::kError) {
        failed = true;
        return out;
      }
      check(s.consumed > 0 && s.consumed <= in.size() - off);
      take(s);
      off += s.consumed;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kFixed = 1 + 8 + 4 + 1 + 1 + 1;
  if (size < kFixed) return 0;
  const bool masked = data[0] & 1;
  const size_t cut = (data[0] >> 1) & 0x1F;
  net::handover::WebSocketState s;
  for (int i = 0; i < 8; ++i) s.payload_left |= static_cast<uint64_t>(data[1 + i]) << (8 * i);
  std::memcpy(s.mask.data(), data + 9, 4);
  s.mask_offset = data[13];
  s.in_message = data[14] & 1;
  s.in_frame = data[14] & 2;
  s.masked = data[14] & 4;
  const size_t kept = std::min<size_t>(data[15], size - kFixed);
  s.stash.assign(reinterpret_cast<const char*>(data + kFixed), kept);

  ReceiverState state;
  if (const char* why = import_state(s, masked, state)) {
    check(why[0] != '\0');
    return 0;
  }
  check(export_state(state, as_bytes(std::string_view(s.stash))) == s);

  const std::vector<std::byte> stash(reinterpret_cast<const std::byte*>(s.stash.data()),
                                     reinterpret_cast<const std::byte*>(s.stash.data() + kept));
  const std::vector<std::byte> wire(reinterpret_cast<const std::byte*>(data + kFixed + kept),
                                    reinterpret_cast<const std::byte*>(data + size));
  bool failed_whole = false, failed_cut = false;
  const std::string whole = run(state, stash, wire, 0, masked, failed_whole);
  const std::string pieces = run(state, stash, wire, cut == 0 ? 1 : cut, masked, failed_cut);
  check(failed_whole == failed_cut);
  if (!failed_whole) check(whole == pieces);
  return 0;
}
