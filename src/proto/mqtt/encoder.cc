#include "mqtt/encoder.h"

namespace tcpms::mqtt {
namespace {

// CONNECT carries its own version; every other packet takes the connection's.
std::size_t size_one(const Connect& p, ProtocolVersion) noexcept { return encoded_size(p); }
template <class T>
std::size_t size_one(const T& p, ProtocolVersion v) noexcept { return encoded_size(p, v); }

std::size_t encode_one(const Connect& p, ProtocolVersion, OutBytes out) noexcept { return encode(p, out); }
template <class T>
std::size_t encode_one(const T& p, ProtocolVersion v, OutBytes out) noexcept { return encode(p, v, out); }

}  // namespace

std::size_t encoded_size(const Packet& p, ProtocolVersion v) noexcept {
  return std::visit([&](const auto& x) { return size_one(x, v); }, p);
}

std::size_t encode(const Packet& p, ProtocolVersion v, OutBytes out) noexcept {
  return std::visit([&](const auto& x) { return encode_one(x, v, out); }, p);
}

}  // namespace tcpms::mqtt
