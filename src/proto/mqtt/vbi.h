// Variable Byte Integer (3.1.1 §2.2.3 "Remaining Length", 5.0 §1.5.5): 7 bits per byte, low
// group first, high bit = "more bytes follow", at most 4 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "mqtt/types.h"

namespace tcpms::mqtt {

enum class VarIntStatus : std::uint8_t {
  kOk,
  kNeedMore,   // input ended while the continuation bit was set; not an error on a stream
  kMalformed,  // a 5th byte, or a non-minimal encoding
};

struct VarIntResult {
  VarIntStatus status = VarIntStatus::kNeedMore;
  std::uint32_t value = 0;
  std::uint8_t size = 0;  // bytes consumed when kOk
};

// Decodes from the start of `in`. Rejects encodings longer than needed (e.g. 0x80 0x00 for 0):
// 5.0 requires the minimum number of bytes [MQTT-1.5.5-1], and the 3.1.1 algorithm (§2.2.3)
// cannot produce them, so a peer sending them is broken or probing.
VarIntResult decode_varint(Bytes in) noexcept;

// Bytes needed to encode `value`; 0 if value > kMaxVarInt.
constexpr std::size_t varint_size(std::uint32_t value) noexcept {
  return value < 128u ? 1 : value < 16'384u ? 2 : value < 2'097'152u ? 3 : value <= kMaxVarInt ? 4 : 0;
}

// Writes `value` at the start of `out`. Returns bytes written, or 0 if the value is too large
// or `out` is too small.
std::size_t encode_varint(std::uint32_t value, std::span<std::byte> out) noexcept;

}  // namespace tcpms::mqtt
