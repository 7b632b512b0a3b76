// Little-endian writer and bounds-checked reader for the byte formats tcpms defines itself
// (frames between processes and nodes, session images, stored records). MQTT's own encoding
// is big endian and lives in src/proto/mqtt.
//
// LeReader never reads past its input: a read that does not fit fails, returns zero or an
// empty view, and leaves the reader failed for good, so a decoder can read a whole entry and
// check ok() once. Input is treated as untrusted.
//
// Thread rules: value types, one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tcpms/bytes.h"

namespace tcpms::wire {

class LeWriter {
 public:
  explicit LeWriter(std::string& out) noexcept : out_(out) {}
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void bytes(std::string_view b) { out_.append(b); }
  void bytes(ByteView b) { out_.append(as_chars(b)); }
  // Length-prefixed: u16 for names (client ids, topics, filters), u32 for bodies.
  void str16(std::string_view s) {
    u16(static_cast<uint16_t>(s.size()));
    out_.append(s.substr(0, 0xFFFF));
  }
  void str16(ByteView s) { str16(as_chars(s)); }
  void str32(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void str32(ByteView s) { str32(as_chars(s)); }
  size_t size() const noexcept { return out_.size(); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

class LeReader {
 public:
  explicit LeReader(ByteView in) noexcept : in_(in) {}
  explicit LeReader(std::string_view in) noexcept : in_(as_bytes(in)) {}
  bool ok() const noexcept { return ok_; }
  size_t remaining() const noexcept { return in_.size() - pos_; }
  void fail() noexcept { ok_ = false; }

  uint8_t u8() noexcept { return static_cast<uint8_t>(get(1)); }
  uint16_t u16() noexcept { return static_cast<uint16_t>(get(2)); }
  uint32_t u32() noexcept { return static_cast<uint32_t>(get(4)); }
  uint64_t u64() noexcept { return get(8); }
  ByteView bytes(size_t n) noexcept {
    if (!take(n)) return {};
    return in_.subspan(pos_ - n, n);
  }
  ByteView str16() noexcept { return bytes(u16()); }
  ByteView str32() noexcept { return bytes(u32()); }
  std::string_view text16() noexcept { return as_chars(str16()); }
  // Everything left.
  ByteView rest() noexcept { return bytes(remaining()); }
  // A count of entries, each at least `min_entry_bytes` long: refused when the input cannot
  // hold that many, so a forged count never makes a decoder reserve memory it lacks.
  uint32_t count(size_t min_entry_bytes) noexcept {
    uint32_t n = u32();
    if (ok_ && static_cast<uint64_t>(n) * min_entry_bytes > remaining()) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  bool take(size_t n) noexcept {
    if (!ok_ || remaining() < n) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  uint64_t get(int n) noexcept {
    if (!take(static_cast<size_t>(n))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(in_[pos_ - n + i]) << (8 * i);
    return v;
  }
  ByteView in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace tcpms::wire
