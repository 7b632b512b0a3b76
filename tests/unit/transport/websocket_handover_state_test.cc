// A WebSocket receiver's state in the upgrade handover (websocket/handover_state.h): every
// state receive() leaves behind travels and goes on receiving as if it had never moved; each
// field that disagrees with the rest is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "websocket/frame.h"
#include "websocket/handover_state.h"

namespace tcpms::ws {
namespace {

using net::handover::WebSocketState;

constexpr uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

// A client's frame: masked as clients must.
void frame(std::vector<std::byte>& out, Opcode op, bool fin, size_t payload_size) {
  std::byte header[kMaxHeaderBytes];
  const size_t h = encode_header(header, op, fin, payload_size, kMask);
  out.insert(out.end(), header, header + h);
  const size_t at = out.size();
  for (size_t i = 0; i < payload_size; ++i) out.push_back(static_cast<std::byte>('a' + i % 26));
  apply_mask(out.data() + at, payload_size, kMask, 0);
}

// The engine's receiving (src/net/transport.cc websocket_input), reduced: bytes a read ends
// inside a header or control frame are kept for the next.
struct Receiver {
  ReceiverState state;
  std::vector<std::byte> kept;
  std::string out;  // message bytes, then "|op:payload" per control frame

  void feed(ByteView in) {
    kept.insert(kept.end(), in.begin(), in.end());
    size_t off = 0;
    while (off < kept.size()) {
      Step s = receive(state, MutableByteView(kept).subspan(off), true, 0);
      ASSERT_NE(s.kind, Step::kError) << s.what;
      if (s.kind == Step::kNeedMore) break;
      if (s.kind == Step::kControl) {
        out += '|';
        out += std::to_string(static_cast<int>(s.opcode));
        out += ':';
      }
      out.append(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
      off += s.consumed;
    }
    kept.erase(kept.begin(), kept.begin() + static_cast<long>(off));
  }
};

// Every frame kind a connection can meet, cut at every byte: a message in three fragments
// with a ping and a pong between them, a frame of no payload, lengths in 7 and 16 bits.
std::vector<std::byte> small_stream() {
  std::vector<std::byte> w;
  frame(w, Opcode::kBinary, false, 3);
  frame(w, Opcode::kPing, true, 4);
  frame(w, Opcode::kContinuation, false, 0);
  frame(w, Opcode::kPong, true, 0);
  frame(w, Opcode::kContinuation, true, 300);
  frame(w, Opcode::kBinary, true, 5);
  frame(w, Opcode::kPing, true, kMaxControlPayload);
  return w;
}

// Moves `r` as the handover would, then checks the receiver that arrives receives the rest
// exactly as `r` itself does.
void travel_and_compare(Receiver& r, ByteView rest) {
  const WebSocketState s = export_state(r.state, r.kept);
  Receiver moved;
  moved.state.mask_offset = 9;  // untouched on refusal, overwritten on success
  ASSERT_EQ(import_state(s, true, moved.state), nullptr);
  moved.kept.assign(reinterpret_cast<const std::byte*>(s.stash.data()),
                    reinterpret_cast<const std::byte*>(s.stash.data() + s.stash.size()));
  EXPECT_EQ(export_state(moved.state, moved.kept), s);
  const size_t before = r.out.size();
  r.feed(rest);
  moved.feed(rest);
  EXPECT_EQ(moved.out, r.out.substr(before));
  EXPECT_EQ(export_state(moved.state, moved.kept), export_state(r.state, r.kept));
}

TEST(WebSocketHandoverState, EveryStateTheReceiverLeavesTravels) {
  const std::vector<std::byte> w = small_stream();
  for (size_t cut = 0; cut <= w.size(); ++cut) {
    SCOPED_TRACE(cut);
    Receiver r;
    r.feed(ByteView(w).first(cut));
    travel_and_compare(r, ByteView(w).subspan(cut));
  }
}

TEST(WebSocketHandoverState, A64BitLengthFrameTravelsAnywhereInside) {
  std::vector<std::byte> w;
  frame(w, Opcode::kBinary, true, 70000);
  frame(w, Opcode::kPing, true, 1);
  for (size_t cut : {1ul, 5ul, 9ul, 13ul, 14ul, 15ul, 4000ul, 70013ul, w.size() - 3, w.size()}) {
    SCOPED_TRACE(cut);
    Receiver r;
    r.feed(ByteView(w).first(cut));
    travel_and_compare(r, ByteView(w).subspan(cut));
  }
}

TEST(WebSocketHandoverState, UnmaskedFramesTravelOnAConnectingSide) {
  // A client connection's (servers do not mask): offsets move, the mask stays zero.
  WebSocketState s;
  s.in_frame = true;
  s.payload_left = 7;
  s.mask_offset = 3;
  ReceiverState st;
  EXPECT_EQ(import_state(s, false, st), nullptr);
  EXPECT_EQ(st.payload_left, 7u);
  EXPECT_EQ(st.mask_offset, 3);
}

// A state inside a masked frame, and one between frames holding half a ping.
WebSocketState inside_frame() {
  return {.payload_left = 10, .mask = {1, 2, 3, 4}, .mask_offset = 2, .in_message = true, .in_frame = true,
          .masked = true, .stash = {}};
}
WebSocketState between_frames() {
  WebSocketState s = inside_frame();
  s.payload_left = 0;
  s.in_frame = false;
  s.stash = std::string("\x89\x84\x01\x02\x03\x04\xAA", 7);  // a masked ping of 4, 1 byte in
  return s;
}

struct Forged {
  const char* name;
  WebSocketState state;
  bool expect_masked = true;
};

std::vector<Forged> forged() {
  std::vector<Forged> v;
  auto add = [&v](const char* name, WebSocketState s, bool expect_masked = true) {
    v.push_back({name, std::move(s), expect_masked});
  };
  WebSocketState s;
  s = inside_frame(), s.mask_offset = 4, add("mask offset past the mask", s);
  s = between_frames(), s.mask_offset = 200, add("mask offset far past the mask", s);
  s = between_frames(), s.masked = false, add("a mask on unmasked frames", s);
  s = inside_frame(), s.mask = {}, s.masked = false, s.mask_offset = 0,
  add("unmasked frame on a masked connection", s);
  s = inside_frame(), add("masked frame on an unmasked connection", s, false);
  s = inside_frame(), s.payload_left = 0, add("in a frame with nothing left", s);
  s = inside_frame(), s.payload_left = uint64_t{1} << 63, add("more left than a frame holds", s);
  s = inside_frame(), s.stash.assign(1, '\x82'), add("kept bytes inside a frame", s);
  s = between_frames(), s.payload_left = 5, add("payload left outside a frame", s);
  s = WebSocketState{}, s.mask_offset = 1, add("a mask offset before any frame", s);
  s = between_frames(), s.stash.assign(kMaxControlFrameBytes + 1, '\x89'),
  add("kept bytes longer than a control frame", s);
  s = between_frames(), s.stash = std::string("\xC2\x80", 2), add("kept bytes with reserved bits", s);
  s = between_frames(), s.stash = std::string("\x83\x80", 2), add("kept bytes of an unknown opcode", s);
  s = between_frames(), s.stash = std::string("\x82\x05", 2), add("kept unmasked header", s);
  s = between_frames(), s.stash = std::string("\x09\x80", 2), add("kept fragmented ping", s);
  s = between_frames(), s.stash = std::string("\x82\x81\x01\x02\x03\x04", 6),
  add("kept whole data frame header", s);
  s = between_frames(), s.stash = std::string("\x89\x80\x01\x02\x03\x04", 6),
  add("kept whole control frame", s);
  s = between_frames(), s.stash = std::string("\x89\x80\x01\x02\x03\x04\x82\x81", 8),
  add("kept control frame and more", s);
  return v;
}

TEST(WebSocketHandoverState, EachInconsistentFieldIsRefused) {
  ReceiverState st;
  ASSERT_EQ(import_state(inside_frame(), true, st), nullptr);
  ASSERT_EQ(import_state(between_frames(), true, st), nullptr);
  for (const Forged& f : forged()) {
    SCOPED_TRACE(f.name);
    ReceiverState untouched;
    untouched.mask_offset = 2;
    untouched.payload_left = 99;
    const char* why = import_state(f.state, f.expect_masked, untouched);
    ASSERT_NE(why, nullptr);
    EXPECT_NE(why[0], '\0');
    EXPECT_EQ(untouched.payload_left, 99u);
    EXPECT_EQ(untouched.mask_offset, 2);
  }
}

}  // namespace
}  // namespace tcpms::ws
