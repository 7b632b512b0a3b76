#include "cluster/continuation.h"

#include "wire/little_endian.h"

namespace tcpms::cluster {

void encode_node_item(const NodeHandover& h, std::string& out) {
  wire::LeWriter w(out);
  w.u8(static_cast<uint8_t>(kNodeItem));
  w.u8(kNodeItemVersion);
  const NodeContinuation& n = h.node;
  w.str16(n.incarnation);
  w.u16(n.slot);
  w.u64(n.seq);
  w.str16(n.last_read_id);
  w.u32(static_cast<uint32_t>(n.seen.size()));
  for (const auto& [sender, seq] : n.seen) {
    w.str16(sender);
    w.u64(seq);
  }
  w.u32(static_cast<uint32_t>(n.peers.size()));
  for (const NodeContinuation::Peer& p : n.peers) {
    w.u16(p.slot);
    w.str16(p.name);
    w.str16(p.incarnation);
  }
  std::string image;
  routing::encode_router_image(h.router, image);
  w.str32(image);
}

NodeItemResult decode_node_item(ByteView bytes, uint32_t slots) {
  NodeItemResult r;
  wire::LeReader in(bytes);
  if (in.u8() != static_cast<uint8_t>(kNodeItem) || !in.ok()) {
    r.error = "node item: not a cluster node's item";
    return r;
  }
  if (in.u8() != kNodeItemVersion) {
    r.error = "node item: unknown version";
    return r;
  }
  NodeContinuation& n = r.handover.node;
  n.incarnation = std::string(in.text16());
  n.slot = in.u16();
  n.seq = in.u64();
  n.last_read_id = std::string(in.text16());
  const uint32_t senders = in.count(2 + 8);
  for (uint32_t i = 0; i < senders && in.ok(); ++i) {
    std::string sender(in.text16());
    const uint64_t seq = in.u64();
    n.seen.emplace_back(std::move(sender), seq);
  }
  const uint32_t peers = in.count(2 + 2 + 2);
  for (uint32_t i = 0; i < peers && in.ok(); ++i) {
    NodeContinuation::Peer& p = n.peers.emplace_back();
    p.slot = in.u16();
    p.name = std::string(in.text16());
    p.incarnation = std::string(in.text16());
    if (in.ok() && (p.slot >= slots || p.slot == n.slot || p.name.empty() || p.incarnation.empty())) {
      r.error = "node item: a peer without a name or incarnation, or at a slot it cannot have";
      return r;
    }
  }
  const ByteView image_bytes = in.str32();
  if (!in.ok()) r.error = "node item: truncated";
  else if (in.remaining() != 0) r.error = "node item: bytes after the end";
  else if (n.incarnation.empty()) r.error = "node item: no incarnation";
  else if (n.slot >= slots) r.error = "node item: a slot beyond the node slots";
  if (!r.ok()) return r;
  auto image = routing::decode_router_image(image_bytes, slots);
  if (!image.ok()) r.error = image.error;
  else r.handover.router = std::move(image.image);
  return r;
}

}  // namespace tcpms::cluster
