// libFuzzer target for the upgrade handover's frames (src/proto/handover/handover_frame.h): they come
// from another process, possibly another release, so they are decoded as untrusted input.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input, no unbounded allocation from a forged count (ASan, rss limit);
//  - a refusal carries a message;
//  - whatever decodes re-encodes to the same body (the encoding is canonical).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "handover/handover_frame.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms;
  using namespace tcpms::net::handover;
  const ByteView in(reinterpret_cast<const std::byte*>(data), size);
  LengthResult len = decode_length(in);
  check(len.error == nullptr || len.error[0] != '\0');
  DecodeResult r = decode_body(in);
  if (!r.ok()) {
    check(r.error[0] != '\0');
    return 0;
  }
  std::string again;
  encode(r.frame, again, r.version);
  check(again.size() == size + kLengthBytes);
  check(again.compare(kLengthBytes, std::string::npos, reinterpret_cast<const char*>(data), size) == 0);
  return 0;
}
