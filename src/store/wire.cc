#include "store/wire.h"

#include <zlib.h>

#include <algorithm>

namespace tcpms::store {

void Writer::u16(uint16_t v) {
  out_.push_back(static_cast<char>(v & 0xff));
  out_.push_back(static_cast<char>(v >> 8));
}
void Writer::u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void Writer::u64(uint64_t v) {
  for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void Writer::str16(std::string_view b) {
  u16(static_cast<uint16_t>(b.size()));
  out_.append(b);
}
void Writer::str32(std::string_view b) {
  u32(static_cast<uint32_t>(b.size()));
  out_.append(b);
}

bool Reader::take(size_t n) {
  if (!ok_ || remaining() < n) {
    ok_ = false;
    return false;
  }
  pos_ += n;
  return true;
}
uint8_t Reader::u8() { return take(1) ? static_cast<uint8_t>(in_[pos_ - 1]) : 0; }
uint16_t Reader::u16() {
  if (!take(2)) return 0;
  return static_cast<uint16_t>(static_cast<unsigned>(in_[pos_ - 2]) |
                               static_cast<unsigned>(in_[pos_ - 1]) << 8);
}
uint32_t Reader::u32() {
  if (!take(4)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(in_[pos_ - 4 + i]) << (8 * i);
  return v;
}
uint64_t Reader::u64() {
  if (!take(8)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in_[pos_ - 8 + i]) << (8 * i);
  return v;
}
ByteView Reader::bytes(size_t n) {
  if (!take(n)) return {};
  return in_.subspan(pos_ - n, n);
}
uint32_t Reader::count(size_t min_entry_bytes) {
  uint32_t n = u32();
  if (ok_ && static_cast<uint64_t>(n) * min_entry_bytes > remaining()) ok_ = false;
  return ok_ ? n : 0;
}

uint32_t crc32_of(ByteView bytes) noexcept {
  uLong c = crc32(0L, Z_NULL, 0);
  // zlib takes a uInt length; records are far below 4 GiB, but stay correct for any size.
  const auto* p = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  while (left > 0) {
    const uInt n = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    c = crc32(c, p, n);
    p += n;
    left -= n;
  }
  return static_cast<uint32_t>(c);
}

void seal_record(std::string& out, size_t start) {
  const uint32_t crc = crc32_of(as_bytes(std::string_view(out).substr(start)));
  Writer(out).u32(crc);
}

Decoded<ByteView> open_record(ByteView record, uint8_t version) {
  Decoded<ByteView> r;
  if (record.size() < 5) {
    r.error = "record shorter than its envelope";
    return r;
  }
  const ByteView body = record.first(record.size() - 4);
  Reader crc(record.subspan(record.size() - 4));
  if (crc.u32() != crc32_of(body)) {
    r.error = "record checksum mismatch";
    return r;
  }
  if (static_cast<uint8_t>(body[0]) != version) {
    r.error = "unknown record format version";
    return r;
  }
  r.value = body.subspan(1);
  return r;
}

}  // namespace tcpms::store
