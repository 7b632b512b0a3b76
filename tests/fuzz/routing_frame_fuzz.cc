// libFuzzer target for routing::decode: frames come from other processes and other machines,
// so they are decoded as untrusted input.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input (ASan);
//  - whatever decodes re-encodes to exactly the input (the encoding is canonical), and decodes
//    again to a frame of the same kind;
//  - a message body inside a push decodes or is refused without harm.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "routing/frame.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms;
  using namespace tcpms::routing;
  const ByteView in(reinterpret_cast<const std::byte*>(data), size);
  auto f = decode(in);
  if (!f) return 0;
  const std::string again = encode(*f);
  check(again == std::string(reinterpret_cast<const char*>(data), size));
  auto g = decode(as_bytes(again));
  check(g.has_value() && g->index() == f->index());
  if (const auto* b = std::get_if<ById>(&*f)) {
    if (auto m = decode_message_body(b->body)) check(encode_message_body(*m).size() == b->body.size());
  }
  if (const auto* d = std::get_if<InterestDelta>(&*f)) {
    for (size_t i = 0; i < d->count(); ++i) (void)d->at(i);
    for (size_t i = 0; i < d->shapes.count(); ++i) (void)d->shapes.at(i);
  }
  return 0;
}
