// libFuzzer target for the store's record decoders (src/store/*_record.h): stored bytes come
// from a file that may be damaged or tampered with, so they are decoded as untrusted input.
// Built once per record type (store.cmake defines TCPMS_RECORD to pick the codec).
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input, no unbounded allocation (ASan, rss limit);
//  - a refusal carries a message;
//  - whatever decodes re-encodes to exactly the input (the encoding is canonical: the
//    envelope's CRC and length prefixes leave one form per value).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "store/message_record.h"
#include "store/retained_record.h"
#include "store/session_record.h"
#include "store/subscription_record.h"
#include "store/will_record.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

using namespace tcpms::store;

#define TCPMS_CODEC(name) TCPMS_CODEC_OF(name)
#define TCPMS_CODEC_OF(name) \
  struct Codec {          \
    static auto decode(tcpms::ByteView b) { return decode_##name(b); } \
    template <typename T> \
    static void encode(const T& v, std::string& out) { encode_##name(v, out); } \
  };
TCPMS_CODEC(TCPMS_RECORD)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const tcpms::ByteView in(reinterpret_cast<const std::byte*>(data), size);
  auto d = Codec::decode(in);
  if (!d.ok()) {
    check(d.error != nullptr && d.error[0] != '\0');
    return 0;
  }
  std::string again;
  Codec::encode(d.value, again);
  check(again == std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
