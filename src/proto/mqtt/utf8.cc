#include "mqtt/utf8.h"

#include <cstring>

namespace tcpms::mqtt {
namespace {

constexpr std::uint64_t kHighBits = 0x8080808080808080ull;
constexpr std::uint64_t kLowBits = 0x0101010101010101ull;

// True if all 8 bytes are ASCII and none is 0x00: most topics and client ids, so the common case
// costs one load and two tests per 8 bytes.
inline bool ascii_no_nul8(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  const bool has_zero = ((v - kLowBits) & ~v & kHighBits) != 0;
  return (v & kHighBits) == 0 && !has_zero;
}

inline bool is_cont(unsigned char c) noexcept { return (c & 0xC0u) == 0x80u; }

}  // namespace

Utf8Status validate_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    if (end - p >= 8 && ascii_no_nul8(p)) {
      p += 8;
      continue;
    }
    const unsigned char c = *p;
    if (c < 0x80u) {
      if (c == 0) return Utf8Status::kNullCharacter;
      ++p;
      continue;
    }
    // Ranges of the second byte from RFC 3629 §4; they exclude overlongs (E0, F0), surrogates
    // (ED) and code points above U+10FFFF (F4).
    std::size_t len;
    unsigned char lo = 0x80u, hi = 0xBFu;
    if (c >= 0xC2u && c <= 0xDFu) {
      len = 2;
    } else if (c >= 0xE0u && c <= 0xEFu) {
      len = 3;
      if (c == 0xE0u) lo = 0xA0u;
      if (c == 0xEDu) hi = 0x9Fu;
    } else if (c >= 0xF0u && c <= 0xF4u) {
      len = 4;
      if (c == 0xF0u) lo = 0x90u;
      if (c == 0xF4u) hi = 0x8Fu;
    } else {
      return Utf8Status::kIllFormed;  // 0x80..0xC1 as a lead byte, or 0xF5..0xFF
    }
    if (static_cast<std::size_t>(end - p) < len) return Utf8Status::kIllFormed;
    if (p[1] < lo || p[1] > hi) return Utf8Status::kIllFormed;
    for (std::size_t i = 2; i < len; ++i) {
      if (!is_cont(p[i])) return Utf8Status::kIllFormed;
    }
    p += len;
  }
  return Utf8Status::kValid;
}

bool has_discouraged_code_points(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    std::uint32_t cp;
    std::size_t len;
    if (*p < 0x80u) {
      cp = *p;
      len = 1;
    } else if (*p < 0xE0u) {
      cp = *p & 0x1Fu;
      len = 2;
    } else if (*p < 0xF0u) {
      cp = *p & 0x0Fu;
      len = 3;
    } else {
      cp = *p & 0x07u;
      len = 4;
    }
    if (static_cast<std::size_t>(end - p) < len) return false;  // not valid; not our question
    for (std::size_t i = 1; i < len; ++i) cp = (cp << 6) | (p[i] & 0x3Fu);
    p += len;
    if ((cp >= 0x01 && cp <= 0x1F) || (cp >= 0x7F && cp <= 0x9F)) return true;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFEu) == 0xFFFEu) return true;
  }
  return false;
}

}  // namespace tcpms::mqtt
