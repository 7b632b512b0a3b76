#include "store/wire.h"

#include <zlib.h>

#include <algorithm>

namespace tcpms::store {

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
