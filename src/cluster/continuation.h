// The handover of a cluster node in an upgrade (docs/upgrade.md, "A cluster node"): the new
// process goes on as the same node, so that the other nodes notice nothing. It sends as the
// same sender (incarnation and sequence numbers), reads its stream from the entry after the
// last one the old process read, and knows what the router knew (routing/router_image.h).
// A new incarnation instead would make every other node take this one down and relearn it,
// and what they published to its subscribers meanwhile would be lost.
//
// The handover's State frame carries it as one item (src/broker/connection_image.h lists
// the others):
//   'C', u8 version (1),
//   str16 incarnation, u16 slot, u64 the last sequence number sent, str16 the last entry id
//   of this node's stream that was read,
//   u32 senders, each: str16 sender tag, u64 its last sequence read (the DuplicateFilter),
//   u32 peers up, each: u16 slot, str16 node id, str16 incarnation,
//   str32 the router image.
//
// Pure functions, no I/O; the decoder treats its input as untrusted (fuzzed:
// tests/fuzz/node_handover_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "routing/router_image.h"
#include "tcpms/bytes.h"

namespace tcpms::cluster {

inline constexpr char kNodeItem = 'C';
inline constexpr uint8_t kNodeItemVersion = 1;

struct NodeContinuation {
  struct Peer {
    uint16_t slot = 0;
    std::string name;
    std::string incarnation;
  };
  std::string incarnation;
  uint16_t slot = 0;
  uint64_t seq = 0;
  std::string last_read_id = "0-0";
  std::vector<std::pair<std::string, uint64_t>> seen;
  std::vector<Peer> peers;
};

struct NodeHandover {
  NodeContinuation node;
  routing::RouterImage router;  // travels as str32 routing::encode_router_image
};

void encode_node_item(const NodeHandover& h, std::string& out);

struct NodeItemResult {
  NodeHandover handover;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
// Refused: not a node item, another version, an empty incarnation, a slot (the node's or a
// peer's) at or above `slots`, a peer without a name or incarnation, a count the input cannot
// hold, bytes left over, a router image that decode_router_image refuses. The image is
// decoded here, once, and handed back decoded: the caller needs it whole anyway.
NodeItemResult decode_node_item(ByteView bytes, uint32_t slots);

}  // namespace tcpms::cluster
