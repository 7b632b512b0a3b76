#include "tls13/record.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <string_view>

namespace tcpms::tls13 {
namespace {

const EVP_MD* hash_of(Suite s) noexcept {
  return s == Suite::kAes256GcmSha384 ? EVP_sha384() : EVP_sha256();
}

// HKDF-Expand-Label(secret, label, "", length) for length <= the hash length, which is one
// HMAC block (RFC 8446 section 7.1, RFC 5869 section 2.3).
bool expand_label(Suite s, Bytes secret, std::string_view label, size_t length, std::byte* out) noexcept {
  constexpr std::string_view kPrefix = "tls13 ";
  unsigned char info[2 + 1 + 6 + 16 + 1 + 1];
  if (label.size() > 16 || length > secret_bytes(s)) return false;
  size_t n = 0;
  info[n++] = static_cast<unsigned char>(length >> 8);
  info[n++] = static_cast<unsigned char>(length);
  info[n++] = static_cast<unsigned char>(kPrefix.size() + label.size());
  std::memcpy(info + n, kPrefix.data(), kPrefix.size());
  n += kPrefix.size();
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  info[n++] = 1;  // HKDF-Expand's block counter
  unsigned char block[EVP_MAX_MD_SIZE];
  unsigned int block_len = 0;
  if (HMAC(hash_of(s), secret.data(), static_cast<int>(secret.size()), info, n, block, &block_len) == nullptr)
    return false;
  std::memcpy(out, block, length);
  return true;
}

// The per-record nonce: the IV XOR the sequence number, big endian, left-padded (section 5.3).
void make_nonce(const TrafficKeys& k, unsigned char* nonce) noexcept {
  std::memcpy(nonce, k.iv.data(), kIvBytes);
  for (int i = 0; i < 8; ++i) nonce[kIvBytes - 1 - i] ^= static_cast<unsigned char>(k.seq >> (8 * i));
}

uint16_t read_u16(const std::byte* p) noexcept {
  return static_cast<uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}

}  // namespace

Suite suite_from_id(uint16_t iana) noexcept {
  switch (iana) {
    case 0x1301: return Suite::kAes128GcmSha256;
    case 0x1302: return Suite::kAes256GcmSha384;
    case 0x1303: return Suite::kChaCha20Poly1305Sha256;
    default: return Suite::kNone;
  }
}

size_t secret_bytes(Suite s) noexcept {
  switch (s) {
    case Suite::kAes256GcmSha384: return 48;
    case Suite::kNone: return 0;
    default: return 32;
  }
}

size_t key_bytes(Suite s) noexcept {
  switch (s) {
    case Suite::kAes128GcmSha256: return 16;
    case Suite::kNone: return 0;
    default: return 32;
  }
}

bool install(Suite s, Bytes secret, TrafficKeys& out) noexcept {
  if (s == Suite::kNone || secret.size() != secret_bytes(s)) return false;
  std::memmove(out.secret.data(), secret.data(), secret.size());  // may be out.secret itself
  if (!expand_label(s, secret, "key", key_bytes(s), out.key.data())) return false;
  if (!expand_label(s, secret, "iv", kIvBytes, out.iv.data())) return false;
  out.seq = 0;
  return true;
}

bool update(Suite s, TrafficKeys& keys) noexcept {
  const size_t n = secret_bytes(s);
  if (n == 0) return false;
  std::array<std::byte, 48> next{};
  if (!expand_label(s, Bytes(keys.secret.data(), n), "traffic upd", n, next.data())) return false;
  return install(s, Bytes(next.data(), n), keys);
}

Header parse_header(Bytes in) noexcept {
  Header h;
  if (in.size() < kHeaderBytes) return h;
  const auto type = static_cast<ContentType>(in[0]);
  h.status = Header::kError;
  h.outer = type;
  // After the handshake every record is protected (outer type application_data); a
  // plaintext alert or change_cipher_spec now is a protocol error (section 5).
  if (type != ContentType::kApplicationData) {
    h.alert = AlertCode::kUnexpectedMessage;
    return h;
  }
  if (read_u16(in.data() + 1) != 0x0303) {
    h.alert = AlertCode::kDecodeError;
    return h;
  }
  const size_t body = read_u16(in.data() + 3);
  if (body > kMaxCiphertext) {
    h.alert = AlertCode::kRecordOverflow;
    return h;
  }
  if (body < kTagBytes + 1) {  // not even an inner type and a tag
    h.alert = AlertCode::kBadRecordMac;
    return h;
  }
  h.status = Header::kOk;
  h.record_bytes = kHeaderBytes + body;
  return h;
}

Inner split_inner(MutableBytes plaintext) noexcept {
  Inner r;
  size_t n = plaintext.size();
  while (n > 0 && plaintext[n - 1] == std::byte{0}) --n;
  if (n == 0) return r;
  r.ok = true;
  r.type = static_cast<ContentType>(plaintext[n - 1]);
  r.content = plaintext.first(n - 1);
  // A record's content is at most 2^14 bytes whatever the padding (section 5.4).
  if (r.content.size() > kMaxPlaintext) r.ok = false;
  return r;
}

PostHandshake parse_post_handshake(Bytes content) noexcept {
  constexpr uint8_t kKeyUpdate = 24;
  PostHandshake r;
  if (content.empty()) return r;  // a zero-length handshake record is forbidden (section 5.1)
  size_t at = 0;
  while (at < content.size()) {
    if (content.size() - at < 4) {
      r.alert = AlertCode::kDecodeError;  // a message split over records: not taken here
      return r;
    }
    const uint8_t type = std::to_integer<uint8_t>(content[at]);
    const size_t len = (std::to_integer<size_t>(content[at + 1]) << 16) |
                       (std::to_integer<size_t>(content[at + 2]) << 8) |
                       std::to_integer<size_t>(content[at + 3]);
    if (type != kKeyUpdate) {
      r.alert = AlertCode::kUnexpectedMessage;  // a client sends nothing else after Finished
      return r;
    }
    if (len != 1 || content.size() - at < 5) {
      r.alert = AlertCode::kDecodeError;
      return r;
    }
    const uint8_t request = std::to_integer<uint8_t>(content[at + 4]);
    if (request > 1) {
      r.alert = AlertCode::kDecodeError;  // illegal_parameter in spirit; decode_error is allowed
      return r;
    }
    r.key_update = true;
    r.update_requested = request == 1;
    at += 5;
    // The key changes after it, so it must end its record (section 5.1).
    if (at != content.size()) {
      r.key_update = false;
      r.alert = AlertCode::kUnexpectedMessage;
      return r;
    }
  }
  r.ok = true;
  return r;
}

void encode_key_update(std::byte* out, bool request_update) noexcept {
  out[0] = std::byte{24};
  out[1] = std::byte{0};
  out[2] = std::byte{0};
  out[3] = std::byte{1};
  out[4] = std::byte{static_cast<uint8_t>(request_update ? 1 : 0)};
}

struct Aead::Impl {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER* aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  EVP_CIPHER* aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  EVP_CIPHER* chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);

  ~Impl() {
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(aes128);
    EVP_CIPHER_free(aes256);
    EVP_CIPHER_free(chacha);
  }
  const EVP_CIPHER* cipher(Suite s) const noexcept {
    switch (s) {
      case Suite::kAes128GcmSha256: return aes128;
      case Suite::kAes256GcmSha384: return aes256;
      case Suite::kChaCha20Poly1305Sha256: return chacha;
      case Suite::kNone: break;
    }
    return nullptr;
  }

  // Keys the context for one record (its nonce from the sequence number), runs the record's
  // header through it as additional data, then the `n` bytes after the header, in place.
  bool crypt(Suite s, const TrafficKeys& keys, bool encrypt, unsigned char* record, size_t n) noexcept {
    const EVP_CIPHER* c = cipher(s);
    if (c == nullptr || ctx == nullptr) return false;
    unsigned char nonce[kIvBytes];
    make_nonce(keys, nonce);
    auto* key = reinterpret_cast<const unsigned char*>(keys.key.data());
    int len = 0;
    return EVP_CipherInit_ex2(ctx, c, key, nonce, encrypt ? 1 : 0, nullptr) == 1 &&
           EVP_CipherUpdate(ctx, nullptr, &len, record, static_cast<int>(kHeaderBytes)) == 1 &&
           EVP_CipherUpdate(ctx, record + kHeaderBytes, &len, record + kHeaderBytes, static_cast<int>(n)) == 1 &&
           static_cast<size_t>(len) == n;
  }
};

Aead::Aead() : impl_(new Impl) {}
Aead::~Aead() { delete impl_; }

size_t Aead::seal(Suite s, TrafficKeys& keys, ContentType type, Bytes plain, std::byte* out) noexcept {
  if (plain.size() > kMaxPlaintext) return 0;
  const size_t inner = plain.size() + 1;
  const size_t body = inner + kTagBytes;
  auto* o = reinterpret_cast<unsigned char*>(out);
  o[0] = static_cast<unsigned char>(ContentType::kApplicationData);
  o[1] = 0x03;
  o[2] = 0x03;
  o[3] = static_cast<unsigned char>(body >> 8);
  o[4] = static_cast<unsigned char>(body);
  if (!plain.empty() && plain.data() != out + kHeaderBytes)
    std::memmove(o + kHeaderBytes, plain.data(), plain.size());
  o[kHeaderBytes + plain.size()] = static_cast<unsigned char>(type);
  int fin = 0;
  unsigned char* tag = o + kHeaderBytes + inner;
  if (!impl_->crypt(s, keys, true, o, inner) || EVP_EncryptFinal_ex(impl_->ctx, tag, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(impl_->ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
    return 0;
  }
  ++keys.seq;
  return kHeaderBytes + body;
}

Aead::Opened Aead::open(Suite s, TrafficKeys& keys, MutableBytes record) noexcept {
  Opened r;
  if (record.size() < kHeaderBytes + kTagBytes + 1) return r;
  auto* p = reinterpret_cast<unsigned char*>(record.data());
  const size_t text = record.size() - kHeaderBytes - kTagBytes;
  unsigned char* tag = p + kHeaderBytes + text;
  int fin = 0;
  // The tag is checked before a byte of the plaintext is used: a forged record fails whole.
  if (!impl_->crypt(s, keys, false, p, text) ||
      EVP_CIPHER_CTX_ctrl(impl_->ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), tag) != 1 ||
      EVP_DecryptFinal_ex(impl_->ctx, tag, &fin) != 1) {
    return r;  // forged, corrupted or out of order: bad_record_mac
  }
  ++keys.seq;
  r.ok = true;
  r.plaintext = record.subspan(kHeaderBytes, text);
  return r;
}

}  // namespace tcpms::tls13
