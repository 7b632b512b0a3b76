// Wire: the envelope every stored record has (record formats in *_record.h), on the shared
// little-endian Writer and bounds-checked Reader (proto/wire/little_endian.h):
//
//   u8 record format version | fields ... | u32 CRC-32 (zlib) of everything before it
//
// The CRC catches bytes garbled on disk that SQLite's page structure does not notice (it
// checks pages, not the values in them). Pure functions, no I/O.
//
// Thread rules: none (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tcpms/bytes.h"
#include "tcpms/shared_bytes.h"
#include "wire/little_endian.h"

namespace tcpms::store {

// The result of a decoder: `error` is null on success, else a static description.
template <typename T>
struct Decoded {
  T value{};
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};

// The little-endian writer and bounds-checked reader every format of tcpms's own uses.
using Writer = wire::LeWriter;
using Reader = wire::LeReader;

// --- the record envelope ---------------------------------------------------------------------
// Appends the CRC over everything from `start` (the version byte) to the end.
void seal_record(std::string& out, size_t start);

// Writes one record: the version byte at construction, the fields through Writer, the CRC at
// finish().
class RecordWriter : public Writer {
 public:
  RecordWriter(std::string& out, uint8_t version) : Writer(out), out_(out), start_(out.size()) {
    u8(version);
  }
  void finish() { seal_record(out_, start_); }

 private:
  std::string& out_;
  size_t start_;
};

// A refusal with its reason.
template <typename T>
Decoded<T> refused(const char* why) {
  Decoded<T> d;
  d.error = why;
  return d;
}
// Checks length, CRC and version; on success the view of the fields (between the version byte
// and the CRC).
Decoded<ByteView> open_record(ByteView record, uint8_t version);

uint32_t crc32_of(ByteView bytes) noexcept;

// The bytes of a view as shared bytes (empty view: empty SharedBytes, no allocation).
inline SharedBytes shared_copy(ByteView b) { return b.empty() ? SharedBytes() : SharedBytes::copy_of(b); }

}  // namespace tcpms::store
