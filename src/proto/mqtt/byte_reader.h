// Bounds-checked cursor over a packet body. Internal to the codec: every read either succeeds
// or leaves the reader untouched and returns false, so decoders never index past the input.
#pragma once

#include <cstdint>
#include <string_view>

#include "mqtt/types.h"
#include "mqtt/vbi.h"

namespace tcpms::mqtt::detail {

class ByteReader {
 public:
  explicit ByteReader(Bytes in) noexcept : in_(in) {}

  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  bool empty() const noexcept { return pos_ == in_.size(); }

  bool u8(std::uint8_t& v) noexcept {
    if (remaining() < 1) return false;
    v = static_cast<std::uint8_t>(in_[pos_++]);
    return true;
  }
  bool u16(std::uint16_t& v) noexcept {
    if (remaining() < 2) return false;
    v = static_cast<std::uint16_t>((static_cast<unsigned>(in_[pos_]) << 8) |
                                   static_cast<unsigned>(in_[pos_ + 1]));
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) noexcept {
    if (remaining() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint32_t>(in_[pos_ + i]);
    pos_ += 4;
    return true;
  }
  // A truncated or over-long integer inside a complete body is malformed either way.
  bool varint(std::uint32_t& v) noexcept {
    const VarIntResult r = decode_varint(in_.subspan(pos_));
    if (r.status != VarIntStatus::kOk) return false;
    v = r.value;
    pos_ += r.size;
    return true;
  }
  bool bytes(std::size_t n, Bytes& out) noexcept {
    if (remaining() < n) return false;
    out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // Two-byte length prefix then data: Binary Data (5.0 §1.5.6) and, before UTF-8 checks, strings.
  bool prefixed(Bytes& out) noexcept {
    std::uint16_t n = 0;
    const std::size_t start = pos_;
    if (!u16(n)) return false;
    if (!bytes(n, out)) {
      pos_ = start;
      return false;
    }
    return true;
  }
  Bytes rest() noexcept {
    Bytes r = in_.subspan(pos_);
    pos_ = in_.size();
    return r;
  }

 private:
  Bytes in_;
  std::size_t pos_ = 0;
};

}  // namespace tcpms::mqtt::detail
