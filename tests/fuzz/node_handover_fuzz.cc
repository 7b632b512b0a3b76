// libFuzzer target for cluster::decode_node_item and routing::decode_router_image: the item
// an old process hands its successor so that it goes on as the same cluster node. It comes
// over a Unix socket from a process of ours, but is decoded as untrusted input all the same.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input (ASan);
//  - an accepted item has an incarnation, its slot and every peer's below the limit, peers
//    with names, and a decoded router image whose peers and holders are below the limit too;
//  - what is accepted encodes back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cluster/continuation.h"
#include "routing/router_image.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kSlots = 32;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms;
  const ByteView in(reinterpret_cast<const std::byte*>(data), size);
  if (auto r = cluster::decode_node_item(in, kSlots); r.ok()) {
    const cluster::NodeContinuation& n = r.handover.node;
    check(!n.incarnation.empty() && n.slot < kSlots);
    for (const auto& p : n.peers) check(p.slot < kSlots && p.slot != n.slot && !p.name.empty());
    for (const auto& p : r.handover.router.peers) check(p.peer < kSlots);
    for (const auto& e : r.handover.router.directory) check(e.holder < kSlots);
    std::string again;
    cluster::encode_node_item(r.handover, again);
    check(again == std::string(reinterpret_cast<const char*>(data), size));
  }
  if (auto r = routing::decode_router_image(in, kSlots); r.ok()) {
    for (const auto& p : r.image.peers) check(p.peer < kSlots);
    for (const auto& e : r.image.directory) check(e.holder < kSlots);
    std::string again;
    routing::encode_router_image(r.image, again);
    check(again == std::string(reinterpret_cast<const char*>(data), size));
  }
  return 0;
}
