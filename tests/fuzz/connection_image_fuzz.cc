// libFuzzer target for decode_connection_image and the State frame's items: the bytes come from another process (the one
// being replaced, in an upgrade handover), so they are decoded as untrusted input.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input, no unbounded allocation from a forged count (ASan, rss limit);
//  - a refusal carries a message;
//  - whatever decodes re-encodes to bytes that decode again and re-encode identically.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "broker/connection_image.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint64_t kNow = 1'000'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms;
  using namespace tcpms::broker;
  const ByteView in(reinterpret_cast<const std::byte*>(data), size);
  // The State frame's items share the codec file; their first byte says which decoder.
  if (size > 0 && data[0] == static_cast<uint8_t>(kRetainedItem)) {
    RetainedItemResult ri = decode_retained_item(in);
    if (!ri.ok()) {
      check(ri.error != nullptr && ri.error[0] != '\0');
      return 0;
    }
    std::string again;
    encode_retained_item(ri.image, again);
    check(again == std::string(reinterpret_cast<const char*>(data), size));
    return 0;
  }
  if (size > 0 && data[0] == static_cast<uint8_t>(kOfflineSessionItem)) {
    OfflineItemResult oi = decode_offline_item(in, kNow);
    if (!oi.ok()) {
      check(oi.error != nullptr && oi.error[0] != '\0');
      return 0;
    }
    std::string again;
    encode_offline_item(oi.image, again, kNow);
    OfflineItemResult oi2 = decode_offline_item(as_bytes(again), kNow);
    check(oi2.ok());
    std::string third;
    encode_offline_item(oi2.image, third, kNow);
    check(third == again);
    return 0;
  }
  ConnectionImageResult r = decode_connection_image(in, kNow);
  if (!r.ok()) {
    check(r.error != nullptr && r.error[0] != '\0');
    return 0;
  }
  std::string again;
  encode_connection_image(r.image, again, kNow);
  ConnectionImageResult r2 = decode_connection_image(as_bytes(again), kNow);
  check(r2.ok());
  std::string third;
  encode_connection_image(r2.image, third, kNow);
  check(third == again);
  return 0;
}
