// Basic MQTT wire vocabulary shared by every codec file.
// Pure data; safe to use from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tcpms::mqtt {

// A read-only view into bytes owned by the caller (the connection's read buffer).
using Bytes = std::span<const std::byte>;

// The protocol level byte of CONNECT. 3 is MQTT 3.1 ("MQIsdp"), 4 is 3.1.1, 5 is 5.0.
enum class ProtocolVersion : std::uint8_t { kV31 = 3, kV311 = 4, kV5 = 5 };

constexpr bool is_v5(ProtocolVersion v) noexcept { return v == ProtocolVersion::kV5; }

// Control packet types, the high nibble of the first fixed-header byte (3.1.1 §2.2.1, 5.0 §2.1.2).
enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // 5.0 only; "Reserved" in 3.1.1.
};

enum class QoS : std::uint8_t { k0 = 0, k1 = 1, k2 = 2 };

// Largest value a Variable Byte Integer can carry (3.1.1 §2.2.3, 5.0 §1.5.5): 256 MiB - 1.
inline constexpr std::uint32_t kMaxVarInt = 268'435'455;

inline std::string_view as_chars(Bytes b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace tcpms::mqtt
