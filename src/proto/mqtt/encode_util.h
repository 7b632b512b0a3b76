// Size arithmetic and framing shared by the encode_*.cc files. Internal.
//
// Sizes are computed in std::size_t with kUnencodable standing for "this field cannot be put on
// the wire"; it is larger than any Remaining Length, and a handful of them cannot overflow, so
// one check in frame_size() catches every bad field.
#pragma once

#include <string_view>

#include "mqtt/byte_writer.h"
#include "mqtt/properties.h"

namespace tcpms::mqtt::detail {

inline constexpr std::size_t kUnencodable = std::size_t{1} << 40;

inline std::size_t prefixed_size(std::size_t n) noexcept { return n <= 0xFFFF ? 2 + n : kUnencodable; }
inline std::size_t prefixed_size(std::string_view s) noexcept { return prefixed_size(s.size()); }
inline std::size_t prefixed_size(Bytes b) noexcept { return prefixed_size(b.size()); }

inline std::size_t properties_size(const Properties& p) noexcept {
  return p.wire_size() <= kMaxVarInt ? varint_size(static_cast<std::uint32_t>(p.wire_size())) + p.wire_size()
                                     : kUnencodable;
}
inline void write_properties(ByteWriter& w, const Properties& p) noexcept {
  w.varint(static_cast<std::uint32_t>(p.wire_size()));
  w.raw(p.wire());
}

// Whole packet size for a body of `body` bytes; 0 if it cannot be framed.
inline std::size_t frame_size(std::size_t body) noexcept {
  return body <= kMaxVarInt ? 1 + varint_size(static_cast<std::uint32_t>(body)) + body : 0;
}

// Writes byte 1 and the Remaining Length, then lets `write_body` fill exactly `body` bytes.
// `written_part` < frame size lets encode_publish_header stop before the payload.
template <class F>
std::size_t encode_frame(std::uint8_t byte0, std::size_t body, std::span<std::byte> out,
                         F&& write_body) noexcept {
  const std::size_t total = frame_size(body);
  if (total == 0 || out.size() < total) return 0;
  ByteWriter w(out.data());
  w.u8(byte0);
  w.varint(static_cast<std::uint32_t>(body));
  write_body(w);
  return w.written();
}

inline constexpr std::uint8_t type_byte(PacketType t, std::uint8_t flags = 0) noexcept {
  return static_cast<std::uint8_t>((static_cast<unsigned>(t) << 4) | flags);
}

}  // namespace tcpms::mqtt::detail
