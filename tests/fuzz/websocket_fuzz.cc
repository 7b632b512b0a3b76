// libFuzzer target for the WebSocket codec, fed the way the engine feeds it.
//
// Input layout: byte 0 picks the read sizes the stream is cut into and whether frames are
// expected masked; the rest is a client's bytes: an Upgrade request, then frames.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - the handshake parser's size is inside the input and ends with a blank line; every
//    refusal has an HTTP status we can answer with, and the answer fits its buffer;
//  - receive() never reads or writes outside the bytes it is given (ASan), consumes at least
//    one byte per data/control step, never more than it was given, and reports kNeedMore only
//    for an incomplete header or control frame (at most 139 bytes kept);
//  - the message bytes received do not depend on how the stream was cut into reads;
//  - a control payload is at most 125 bytes; a Close payload decodes or has a close code.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "websocket/frame.h"
#include "websocket/handshake.h"

namespace {

using namespace tcpms;
using namespace tcpms::ws;

void check(bool ok) {
  if (!ok) std::abort();
}

// Receives `wire` cut into reads of `cut` bytes (0: all at once); returns the message bytes
// and the control frames, or stops at the first error.
std::string run(const std::vector<std::byte>& wire, size_t cut, bool masked, bool& failed) {
  ReceiverState st;
  std::string out;
  std::vector<std::byte> pending;
  failed = false;
  size_t at = 0;
  while (at < wire.size()) {
    size_t take = cut == 0 ? wire.size() - at : std::min(cut, wire.size() - at);
    pending.insert(pending.end(), wire.begin() + static_cast<long>(at),
                   wire.begin() + static_cast<long>(at + take));
    at += take;
    size_t off = 0;
    while (off < pending.size()) {
      MutableByteView rest = MutableByteView(pending).subspan(off);
      Step s = receive(st, rest, masked, 1 << 20);
      if (s.kind == Step::kError) {
        check(s.error != CloseCode::kNone);
        failed = true;
        return out;
      }
      if (s.kind == Step::kNeedMore) {
        check(s.consumed == 0 && rest.size() <= kMaxControlFrameBytes);
        break;
      }
      check(s.consumed > 0 && s.consumed <= rest.size());
      check(s.payload.data() >= rest.data() &&
            s.payload.data() + s.payload.size() <= rest.data() + s.consumed);
      if (s.kind == Step::kData) {
        out.append(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
      } else {
        check(is_control(s.opcode) && s.payload.size() <= kMaxControlPayload);
        if (s.opcode == Opcode::kClose) {
          CloseResult c = decode_close(s.payload);
          check(c.ok || c.error != CloseCode::kNone);
        }
        out += "|ctl:";
        out.append(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
      }
      off += s.consumed;
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<long>(off));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const bool masked = mode & 1;
  const size_t cut = (mode >> 1) & 0x1F;  // 0: one read; else reads of that many bytes
  std::vector<std::byte> in(reinterpret_cast<const std::byte*>(data + 1),
                            reinterpret_cast<const std::byte*>(data + size));

  constexpr std::string_view kProtocols[] = {"mqtt", "mqttv3.1"};
  ServerPolicy policy;
  policy.subprotocols = kProtocols;
  policy.max_request_bytes = 1024;
  UpgradeResult u = parse_upgrade(in, policy);
  size_t frames_at = 0;
  if (u.status == Status::kComplete) {
    check(u.size >= 4 && u.size <= in.size() && u.size <= policy.max_request_bytes);
    check(std::memcmp(in.data() + u.size - 4, "\r\n\r\n", 4) == 0);
    check(u.key.size() == 24);
    char out[kMaxResponseBytes];
    check(write_accept(out, u.key, u.subprotocol) < kMaxResponseBytes);
    frames_at = u.size;
  } else if (u.status == Status::kError) {
    check(u.http_status >= 400 && u.http_status < 600);
    char out[kMaxResponseBytes];
    check(write_refusal(out, u.http_status, u.what) < kMaxResponseBytes);
  }

  std::vector<std::byte> wire(in.begin() + static_cast<long>(frames_at), in.end());
  bool failed_whole = false, failed_cut = false;
  std::string whole = run(wire, 0, masked, failed_whole);
  std::string pieces = run(wire, cut == 0 ? 1 : cut, masked, failed_cut);
  // Cutting the stream differently changes nothing but where an error is noticed.
  check(failed_whole == failed_cut);
  if (!failed_whole) check(whole == pieces);
  return 0;
}
