// libFuzzer target for the TLS 1.3 record codec (src/proto/tls13), the parser of every byte a
// TLS 1.3 client sends after its handshake.
//
// Invariants checked (a violation aborts):
//  - parse_header, split_inner and parse_post_handshake read nothing outside the input
//    (ASan); a complete header's record length is at most kMaxRecordBytes and at least a
//    tag and a type byte; split_inner's content is inside the plaintext;
//  - bytes that were not sealed with the key never open (the tag holds);
//  - whatever the input, sealed (with any suite, any inner type) and opened with the same
//    keys it comes back whole, with its type.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tls13/record.h"

namespace {

using namespace tcpms::tls13;

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Aead aead;
  const auto* in = reinterpret_cast<const std::byte*>(data);
  const Bytes bytes(in, size);

  const Header h = parse_header(bytes);
  if (h.status == Header::kOk) {
    check(h.record_bytes <= kMaxRecordBytes && h.record_bytes >= kHeaderBytes + kTagBytes + 1);
    if (h.record_bytes <= size) {
      std::vector<std::byte> record(in, in + h.record_bytes);
      std::vector<std::byte> secret(32, std::byte{0x5a});
      TrafficKeys keys;
      check(install(Suite::kAes128GcmSha256, secret, keys));
      check(!aead.open(Suite::kAes128GcmSha256, keys, record).ok);
    }
  }

  std::vector<std::byte> plain(in, in + size);
  const Inner inner = split_inner(plain);
  if (inner.ok) check(inner.content.data() >= plain.data() && inner.content.size() < plain.size());

  const PostHandshake p = parse_post_handshake(bytes);
  if (p.ok) check(p.key_update && size == kKeyUpdateBytes);

  if (size == 0) return 0;
  const Suite suite = static_cast<Suite>(1 + data[0] % 3);
  const auto type = static_cast<ContentType>(20 + data[0] / 3 % 4);
  const size_t n = std::min(size - 1, kMaxPlaintext);
  std::vector<std::byte> secret(secret_bytes(suite), std::byte{0x11});
  TrafficKeys writer, reader;
  check(install(suite, secret, writer) && install(suite, secret, reader));
  std::vector<std::byte> record(n + kSealOverhead);
  const size_t sealed = aead.seal(suite, writer, type, Bytes(in + 1, n), record.data());
  check(sealed == record.size());
  check(parse_header(record).status == Header::kOk);
  const Aead::Opened o = aead.open(suite, reader, record);
  check(o.ok);
  const Inner back = split_inner(o.plaintext);
  check(back.ok && back.type == type && back.content.size() == n);
  check(n == 0 || std::memcmp(back.content.data(), in + 1, n) == 0);
  return 0;
}
