// Byte-building helpers for the MQTT codec tests: packets are written out byte by byte as the
// spec's figures show them, so a test reads like the spec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "mqtt/codec.h"

namespace tcpms::mqtt::test {

using Buf = std::vector<std::byte>;

inline Buf B(std::initializer_list<int> v) {
  Buf out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

// Raw characters, no length prefix.
inline Buf raw(std::string_view s) {
  Buf out;
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

// A UTF-8 string / binary field: 2-byte big-endian length then the bytes.
inline Buf str(std::string_view s) {
  Buf out = B({static_cast<int>(s.size() >> 8), static_cast<int>(s.size() & 0xFF)});
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

inline Buf cat(std::initializer_list<Buf> parts) {
  Buf out;
  for (const Buf& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A property list with its Property Length prefix.
inline Buf props(const Buf& list) {
  std::byte len[4];
  const std::size_t n = encode_varint(static_cast<std::uint32_t>(list.size()), len);
  Buf out(len, len + n);
  out.insert(out.end(), list.begin(), list.end());
  return out;
}

// A whole packet: first byte, Remaining Length, body.
inline Buf frame(int byte0, const Buf& body) {
  std::byte len[4];
  const std::size_t n = encode_varint(static_cast<std::uint32_t>(body.size()), len);
  Buf out = B({byte0});
  out.insert(out.end(), len, len + n);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// Decoded packets are views into their input, so tests that decode a temporary Buf keep a copy
// alive for the rest of the test binary's life.
inline const Buf& keep(const Buf& b) {
  static std::deque<Buf> store;
  store.push_back(b);
  return store.back();
}

// Frames `input` and decodes the single packet in it.
inline Decoded<Packet> decode_one(const Buf& input, ProtocolVersion v) {
  const Buf& wire = keep(input);
  const FrameResult f = next_frame(wire, 0);
  if (f.status == FrameStatus::kError) return f.error;
  if (f.status != FrameStatus::kComplete || f.header.packet_size() != wire.size()) {
    return DecodeError{ReasonCode::kUnspecifiedError, "test: not exactly one packet"};
  }
  return decode_packet(f.header, f.body, v);
}

inline constexpr auto k311 = ProtocolVersion::kV311;
inline constexpr auto k5 = ProtocolVersion::kV5;

template <class T>
ReasonCode code_of(const Decoded<T>& r) {
  return r ? ReasonCode::kSuccess : r.error().code;
}

// The outcome of decoding `wire` as one packet: kSuccess or the error's reason code.
inline ReasonCode code(const Buf& wire, ProtocolVersion v = k311) { return code_of(decode_one(wire, v)); }

// Re-encodes a packet into a fresh buffer (empty on failure).
inline Buf encode_to_vec(const Packet& p, ProtocolVersion v) {
  Buf out(encoded_size(p, v));
  if (out.empty()) return out;
  const std::size_t n = encode(p, v, out);
  out.resize(n);
  return out;
}

inline Bytes view(const Buf& b) { return {b.data(), b.size()}; }

}  // namespace tcpms::mqtt::test
