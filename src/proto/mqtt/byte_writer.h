// Unchecked writer for encoders. Callers compute the exact size first (encoded_size) and check
// the output span once, so the per-field writes carry no bounds checks.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "mqtt/types.h"
#include "mqtt/vbi.h"

namespace tcpms::mqtt::detail {

class ByteWriter {
 public:
  explicit ByteWriter(std::byte* out) noexcept : p_(out), start_(out) {}

  void u8(std::uint8_t v) noexcept { *p_++ = static_cast<std::byte>(v); }
  void u16(std::uint16_t v) noexcept {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) noexcept {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void varint(std::uint32_t v) noexcept { p_ += encode_varint(v, {p_, 4}); }
  void raw(Bytes b) noexcept {
    if (!b.empty()) std::memcpy(p_, b.data(), b.size());
    p_ += b.size();
  }
  void prefixed(Bytes b) noexcept {
    u16(static_cast<std::uint16_t>(b.size()));
    raw(b);
  }
  void prefixed(std::string_view s) noexcept { prefixed(as_bytes(s)); }
  std::size_t written() const noexcept { return static_cast<std::size_t>(p_ - start_); }

 private:
  std::byte* p_;
  std::byte* start_;
};

}  // namespace tcpms::mqtt::detail
