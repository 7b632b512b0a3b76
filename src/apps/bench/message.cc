#include "message.h"

#include <cstring>

namespace tcpms::benchapp {
namespace {

inline std::byte pattern(uint32_t conn, uint32_t seq, size_t i) noexcept {
  return static_cast<std::byte>(conn * 131u + seq * 31u + static_cast<uint32_t>(i) * 7u + 1u);
}

}  // namespace

void write_message(MutableByteView out, uint32_t conn, uint32_t seq, uint64_t t_ns) noexcept {
  std::memcpy(out.data(), &conn, 4);
  std::memcpy(out.data() + 4, &seq, 4);
  std::memcpy(out.data() + 8, &t_ns, 8);
  for (size_t i = kMessageHeaderBytes; i < out.size(); ++i) out[i] = pattern(conn, seq, i);
}

std::optional<uint64_t> check_message(ByteView in, uint32_t conn, uint32_t seq) noexcept {
  if (in.size() < kMessageHeaderBytes) return std::nullopt;
  uint32_t c = 0, s = 0;
  uint64_t t = 0;
  std::memcpy(&c, in.data(), 4);
  std::memcpy(&s, in.data() + 4, 4);
  std::memcpy(&t, in.data() + 8, 8);
  if (c != conn || s != seq) return std::nullopt;
  for (size_t i = kMessageHeaderBytes; i < in.size(); ++i) {
    if (in[i] != pattern(conn, seq, i)) return std::nullopt;
  }
  return t;
}

}  // namespace tcpms::benchapp
