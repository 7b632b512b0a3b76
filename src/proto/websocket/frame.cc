#include "websocket/frame.h"

#include <algorithm>
#include <cstring>

namespace tcpms::ws {
namespace {

HeaderResult header_error(CloseCode code, const char* what) noexcept {
  HeaderResult r;
  r.status = Status::kError;
  r.error = code;
  r.what = what;
  return r;
}

Step step_error(CloseCode code, const char* what) noexcept {
  Step s;
  s.kind = Step::kError;
  s.error = code;
  s.what = what;
  return s;
}

bool known_opcode(uint8_t op) noexcept { return op <= 2 || (op >= 8 && op <= 10); }

// Codes a peer may put in a Close frame (section 7.4): 1004-1006 and 1015 are reserved for
// reporting, never sent; 1012-2999 are unassigned or reserved for extensions we do not have.
bool sendable_code(uint16_t c) noexcept {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

}  // namespace

HeaderResult decode_header(ByteView data, bool expect_masked) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  if (n < 2) return {};
  HeaderResult r;
  FrameHeader& h = r.header;
  if (p[0] & 0x70) return header_error(CloseCode::kProtocolError, "reserved bits set");
  const uint8_t op = p[0] & 0x0F;
  if (!known_opcode(op)) return header_error(CloseCode::kProtocolError, "unknown opcode");
  h.fin = p[0] & 0x80;
  h.opcode = static_cast<Opcode>(op);
  h.masked = p[1] & 0x80;
  if (h.masked != expect_masked) {
    return header_error(CloseCode::kProtocolError,
                        expect_masked ? "client frame is not masked" : "server frame is masked");
  }
  const uint8_t len7 = p[1] & 0x7F;
  if (is_control(h.opcode)) {
    if (!h.fin) return header_error(CloseCode::kProtocolError, "fragmented control frame");
    if (len7 > kMaxControlPayload)
      return header_error(CloseCode::kProtocolError, "control frame over 125 bytes");
  }
  size_t at = 2;
  if (len7 == 126) {
    if (n < 4) return {};
    h.payload_size = static_cast<uint64_t>(p[2]) << 8 | p[3];
    if (h.payload_size < 126)
      return header_error(CloseCode::kProtocolError, "length not in its shortest form");
    at = 4;
  } else if (len7 == 127) {
    if (n < 10) return {};
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | p[2 + i];
    if (v >> 63) return header_error(CloseCode::kProtocolError, "length has its top bit set");
    if (v < 65536)
      return header_error(CloseCode::kProtocolError, "length not in its shortest form");
    h.payload_size = v;
    at = 10;
  } else {
    h.payload_size = len7;
  }
  if (h.masked) {
    if (n < at + 4) return {};
    std::memcpy(h.mask, p + at, 4);
    at += 4;
  }
  h.header_size = static_cast<uint8_t>(at);
  r.status = Status::kComplete;
  return r;
}

size_t encode_header(std::byte* out, Opcode opcode, bool fin, uint64_t payload_size,
                     const uint8_t* mask) noexcept {
  auto* p = reinterpret_cast<uint8_t*>(out);
  p[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | static_cast<uint8_t>(opcode));
  const uint8_t mask_bit = mask ? 0x80 : 0;
  size_t at;
  if (payload_size < 126) {
    p[1] = static_cast<uint8_t>(mask_bit | payload_size);
    at = 2;
  } else if (payload_size <= 0xFFFF) {
    p[1] = mask_bit | 126;
    p[2] = static_cast<uint8_t>(payload_size >> 8);
    p[3] = static_cast<uint8_t>(payload_size);
    at = 4;
  } else {
    p[1] = mask_bit | 127;
    for (int i = 0; i < 8; ++i) p[2 + i] = static_cast<uint8_t>(payload_size >> (56 - 8 * i));
    at = 10;
  }
  if (mask) {
    std::memcpy(p + at, mask, 4);
    at += 4;
  }
  return at;
}

void apply_mask(std::byte* data, size_t size, const uint8_t mask[4], size_t offset) noexcept {
  auto* p = reinterpret_cast<uint8_t*>(data);
  uint8_t rot[8];
  for (size_t i = 0; i < 8; ++i) rot[i] = mask[(offset + i) & 3];
  uint64_t m64;
  std::memcpy(&m64, rot, 8);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < size; ++i) p[i] ^= rot[i & 7];
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += len;
  }
  return true;
}

CloseResult decode_close(ByteView payload) noexcept {
  CloseResult r;
  if (payload.empty()) {
    r.ok = true;
    return r;
  }
  if (payload.size() == 1) {
    r.error = CloseCode::kProtocolError;
    r.what = "Close payload of 1 byte";
    return r;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const uint16_t code = static_cast<uint16_t>(p[0] << 8 | p[1]);
  if (!sendable_code(code)) {
    r.error = CloseCode::kProtocolError;
    r.what = "Close code not allowed on the wire";
    return r;
  }
  std::string_view reason(reinterpret_cast<const char*>(p + 2), payload.size() - 2);
  if (!valid_utf8(reason)) {
    r.error = CloseCode::kInvalidPayload;
    r.what = "Close reason is not UTF-8";
    return r;
  }
  r.ok = true;
  r.close = {true, code, reason};
  return r;
}

size_t encode_close(std::byte* out, CloseCode code, std::string_view reason) noexcept {
  if (code == CloseCode::kNone) return 0;
  const auto c = static_cast<uint16_t>(code);
  out[0] = static_cast<std::byte>(c >> 8);
  out[1] = static_cast<std::byte>(c & 0xFF);
  // Cut at a character boundary so the reason stays UTF-8.
  size_t take = std::min(reason.size(), kMaxControlPayload - 2);
  while (take > 0 && take < reason.size() &&
         (static_cast<uint8_t>(reason[take]) & 0xC0) == 0x80) {
    --take;
  }
  if (take != 0) std::memcpy(out + 2, reason.data(), take);  // data() may be null when empty
  return 2 + take;
}

Step receive(ReceiverState& st, MutableByteView data, bool expect_masked,
             uint64_t max_frame_bytes) noexcept {
  Step s;
  size_t hs = 0;
  if (!st.in_frame) {
    HeaderResult h = decode_header(data, expect_masked);
    if (h.status == Status::kNeedMore) return s;
    if (h.status == Status::kError) return step_error(h.error, h.what);
    const FrameHeader& f = h.header;
    if (is_control(f.opcode)) {
      const size_t total = f.header_size + static_cast<size_t>(f.payload_size);
      if (data.size() < total) return s;  // kept whole by the caller: at most 139 bytes
      s.kind = Step::kControl;
      s.opcode = f.opcode;
      s.payload = data.subspan(f.header_size, static_cast<size_t>(f.payload_size));
      if (f.masked) apply_mask(s.payload.data(), s.payload.size(), f.mask, 0);
      s.consumed = total;
      return s;
    }
    if (f.opcode == Opcode::kText)
      return step_error(CloseCode::kUnsupportedData, "text frame (MQTT needs binary frames)");
    if (f.opcode == Opcode::kContinuation && !st.in_message)
      return step_error(CloseCode::kProtocolError, "continuation frame outside a message");
    if (f.opcode == Opcode::kBinary && st.in_message)
      return step_error(CloseCode::kProtocolError, "new message inside a fragmented one");
    if (max_frame_bytes != 0 && f.payload_size > max_frame_bytes)
      return step_error(CloseCode::kMessageTooBig, "frame larger than the listener allows");
    st.in_message = !f.fin;
    st.in_frame = true;
    st.payload_left = f.payload_size;
    std::memcpy(st.mask, f.mask, 4);
    st.mask_offset = 0;
    st.masked = f.masked;
    hs = f.header_size;
  }
  const size_t take =
      static_cast<size_t>(std::min<uint64_t>(st.payload_left, data.size() - hs));
  s.kind = Step::kData;
  s.opcode = Opcode::kBinary;
  s.payload = data.subspan(hs, take);
  if (st.masked) apply_mask(s.payload.data(), take, st.mask, st.mask_offset);
  st.mask_offset = static_cast<uint8_t>((st.mask_offset + take) & 3);
  st.payload_left -= take;
  if (st.payload_left == 0) st.in_frame = false;
  s.consumed = hs + take;
  return s;
}

}  // namespace tcpms::ws
