// Wire: the little-endian building blocks of every stored record (record formats in
// *_record.h) and of session images (broker/session_image.h): a Writer that appends, a Reader
// that never reads past its input, and the envelope every stored record has:
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

namespace tcpms::store {

// The result of a decoder: `error` is null on success, else a static description.
template <typename T>
struct Decoded {
  T value{};
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void raw(std::string_view b) { out_.append(b); }
  void raw(ByteView b) { out_.append(as_chars(b)); }
  // Length-prefixed byte strings: u16 for topics and filters (MQTT's own bound), u32 for
  // payloads and property blocks.
  void str16(std::string_view b);
  void str16(ByteView b) { str16(as_chars(b)); }
  void str32(std::string_view b);
  void str32(ByteView b) { str32(as_chars(b)); }
  size_t size() const noexcept { return out_.size(); }

 private:
  std::string& out_;
};

// Every read is checked against what is left; a failed read leaves ok() false for good, so a
// decoder can read a whole entry and check once.
class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}
  bool ok() const noexcept { return ok_; }
  size_t remaining() const noexcept { return in_.size() - pos_; }
  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  ByteView bytes(size_t n);
  ByteView str16() { return bytes(u16()); }
  ByteView str32() { return bytes(u32()); }
  // A count of entries, each at least `min_entry_bytes` long: refused when the input cannot
  // hold that many, so a forged count never makes a decoder reserve memory it lacks.
  uint32_t count(size_t min_entry_bytes);
  void fail() noexcept { ok_ = false; }

 private:
  bool take(size_t n);
  ByteView in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

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
