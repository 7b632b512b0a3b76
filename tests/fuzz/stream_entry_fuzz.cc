// libFuzzer target for cluster::parse_entry and parse_node_value: entries in a node's Redis
// stream and lease values come from other machines (or anyone who can write to Redis).
//
// Input: the entry's fields (names and values alternating), separated by NUL bytes.
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - no reads outside the input (ASan);
//  - an accepted entry has its slot below the limit, exactly one of a frame and "up", and a
//    sender tag that splits into node and incarnation around its last '/';
//  - an accepted lease value has its slot below the limit and a non-empty incarnation.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "cluster/node_stream.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kSlots = 32;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms::cluster;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t nul = in.find('\0', start);
    fields.push_back(in.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
    if (nul == std::string_view::npos) break;
    start = nul + 1;
  }
  if (auto e = parse_entry(fields, kSlots)) {
    check(e->slot < kSlots);
    check(!e->up || e->frame.empty());
    check(!e->node().empty());
    check(e->node().size() + 1 + e->incarnation().size() == e->sender.size());
  }
  if (auto v = parse_node_value(in, kSlots)) {
    check(v->slot < kSlots);
    check(!v->incarnation.empty());
  }
  return 0;
}
