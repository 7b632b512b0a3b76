// libFuzzer target for decode_session_image: the bytes come from another process (a session
// moving between worker processes or cluster nodes), so they are decoded as untrusted input.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input, no unbounded allocation from a forged count (ASan, rss limit);
//  - a refusal carries a message;
//  - whatever decodes re-encodes, the re-encoding decodes again to the same bytes (the
//    encoding is canonical), and an input of the current version re-encodes to itself.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "broker/session_image.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint64_t kNow = 1'000'000'000;  // one clock for decoding and encoding

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms;
  using namespace tcpms::broker;
  const ByteView in(reinterpret_cast<const std::byte*>(data), size);
  SessionImageResult r = decode_session_image(in, kNow);
  if (!r.ok()) {
    check(r.error != nullptr && r.error[0] != '\0');
    return 0;
  }
  std::string again;
  encode_session_image(r.image, again, kNow);
  if (size > 3 && data[3] == kSessionImageVersion)
    check(again == std::string(reinterpret_cast<const char*>(data), size));
  SessionImageResult r2 = decode_session_image(as_bytes(again), kNow);
  check(r2.ok());
  std::string third;
  encode_session_image(r2.image, third, kNow);
  check(third == again);
  return 0;
}
