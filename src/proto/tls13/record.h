// The TLS 1.3 record layer after the handshake (RFC 8446 sections 5, 4.6.3, 7.1-7.3): what a
// server needs to keep talking to a client once OpenSSL has finished the handshake and its
// `SSL` (about 14 KB per connection) is freed. The same move kTLS makes in the kernel, here in
// user space: per direction only the traffic secret, the AEAD key, the IV and a sequence number
// (TrafficKeys, 100 bytes) are kept.
//
// The three TLS 1.3 suites with a 12-byte nonce and 16-byte tag are served: AES-128-GCM,
// AES-256-GCM, ChaCha20-Poly1305 (OpenSSL's defaults). Anything else keeps its `SSL`.
//
// What is ours is the framing (header, nonce, inner content type, padding, KeyUpdate); the
// AEAD itself is OpenSSL's libcrypto. No I/O: bytes in, bytes out.
//
// Thread rules: functions are pure; an Aead object belongs to one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace tcpms::tls13 {

using Bytes = std::span<const std::byte>;
using MutableBytes = std::span<std::byte>;

enum class Suite : uint8_t { kNone, kAes128GcmSha256, kAes256GcmSha384, kChaCha20Poly1305Sha256 };

// The suite of an IANA id (0x1301, 0x1302, 0x1303); kNone for any other.
Suite suite_from_id(uint16_t iana) noexcept;
size_t secret_bytes(Suite s) noexcept;  // the hash length: 32 or 48
size_t key_bytes(Suite s) noexcept;     // 16 or 32

enum class ContentType : uint8_t {
  kChangeCipherSpec = 20,
  kAlert = 21,
  kHandshake = 22,
  kApplicationData = 23,
};

// Alert descriptions this layer sends (section 6).
enum class AlertCode : uint8_t {
  kCloseNotify = 0,
  kUnexpectedMessage = 10,
  kBadRecordMac = 20,
  kRecordOverflow = 22,
  kDecodeError = 50,
  kUserCanceled = 90,
};

constexpr size_t kHeaderBytes = 5;
constexpr size_t kTagBytes = 16;
constexpr size_t kIvBytes = 12;
constexpr size_t kMaxPlaintext = 16384;                  // 2^14
constexpr size_t kMaxCiphertext = kMaxPlaintext + 256;  // section 5.2
constexpr size_t kMaxRecordBytes = kHeaderBytes + kMaxCiphertext;
// A record sealed from n bytes is n + this long (header, inner type, tag; no padding).
constexpr size_t kSealOverhead = kHeaderBytes + 1 + kTagBytes;
// AES-GCM's safety margin (section 5.5 allows 2^24.5 records per key): the writer asks for a
// key update well before.
constexpr uint64_t kRecordsPerKey = uint64_t{1} << 24;

// One direction's state.
struct TrafficKeys {
  std::array<std::byte, 48> secret{};
  std::array<std::byte, 32> key{};
  std::array<std::byte, kIvBytes> iv{};
  uint64_t seq = 0;
};

// Derives key and IV from `secret` (secret_bytes(s) long) and resets the sequence number
// (section 7.3). False for kNone or a secret of the wrong length.
bool install(Suite s, Bytes secret, TrafficKeys& out) noexcept;
// After a KeyUpdate: the next application traffic secret, its key and IV (section 7.2).
bool update(Suite s, TrafficKeys& keys) noexcept;

struct Header {
  enum Status : uint8_t { kNeedMore, kOk, kError } status = kNeedMore;
  ContentType outer = ContentType::kApplicationData;
  size_t record_bytes = 0;  // header + body, when kOk
  AlertCode alert = AlertCode::kDecodeError;  // when kError
};
// The header at the start of `in`: a protected record (outer type application_data, legacy
// version 0x0303) of at most kMaxCiphertext body bytes. Anything else after the handshake is
// an error with the alert to send.
Header parse_header(Bytes in) noexcept;

// What a decrypted record holds: its real content type and the content without padding.
struct Inner {
  bool ok = false;
  ContentType type = ContentType::kApplicationData;
  MutableBytes content;
};
// Strips the zero padding and the content type byte (section 5.4). Not ok when the
// plaintext is all zeros (an unexpected_message, says the RFC).
Inner split_inner(MutableBytes plaintext) noexcept;

// Post-handshake handshake messages a server accepts: only KeyUpdate (section 4.6.3), whole
// and at the end of its record (the key changes after it); one record's content.
struct PostHandshake {
  bool ok = false;
  AlertCode alert = AlertCode::kUnexpectedMessage;  // when not ok
  bool key_update = false;                           // the peer's key changes after this record
  bool update_requested = false;                     // and it asks us to change ours
};
PostHandshake parse_post_handshake(Bytes content) noexcept;

// A KeyUpdate handshake message (5 bytes).
constexpr size_t kKeyUpdateBytes = 5;
void encode_key_update(std::byte* out, bool request_update) noexcept;

// The AEAD, with the cipher objects fetched once per thread; keys are passed per call, so one
// Aead serves every connection of a loop and nothing of a connection stays in it.
class Aead {
 public:
  Aead();
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  // Seals `plain` (at most kMaxPlaintext bytes) with inner type `type` into `out`, which has
  // room for plain.size() + kSealOverhead bytes; `plain` may be out + kHeaderBytes (in place).
  // Returns the record's length, 0 on failure. Advances keys.seq.
  size_t seal(Suite s, TrafficKeys& keys, ContentType type, Bytes plain, std::byte* out) noexcept;

  // Opens one whole record (header + body, as parse_header measured it) in place. On success
  // the returned view is the plaintext, inside `record`, with the inner type and padding still
  // on (split_inner takes them off). Empty optional-like result: ok false (bad_record_mac).
  struct Opened {
    bool ok = false;
    MutableBytes plaintext;
  };
  Opened open(Suite s, TrafficKeys& keys, MutableBytes record) noexcept;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace tcpms::tls13
