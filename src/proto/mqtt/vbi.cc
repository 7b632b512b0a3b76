#include "mqtt/vbi.h"

namespace tcpms::mqtt {

VarIntResult decode_varint(Bytes in) noexcept {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    if (i == in.size()) return {VarIntStatus::kNeedMore, 0, 0};
    const auto b = static_cast<std::uint8_t>(in[i]);
    value |= static_cast<std::uint32_t>(b & 0x7Fu) << (7 * i);
    if ((b & 0x80u) == 0) {
      // A zero final group after the first byte means a shorter encoding existed.
      if (i > 0 && b == 0) return {VarIntStatus::kMalformed, 0, 0};
      return {VarIntStatus::kOk, value, static_cast<std::uint8_t>(i + 1)};
    }
  }
  return {VarIntStatus::kMalformed, 0, 0};  // continuation bit on the 4th byte
}

std::size_t encode_varint(std::uint32_t value, std::span<std::byte> out) noexcept {
  const std::size_t n = varint_size(value);
  if (n == 0 || out.size() < n) return 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto b = static_cast<std::uint8_t>(value & 0x7Fu);
    value >>= 7;
    if (i + 1 < n) b |= 0x80u;
    out[i] = static_cast<std::byte>(b);
  }
  return n;
}

}  // namespace tcpms::mqtt
