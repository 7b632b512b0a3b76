#include "routing/router_image.h"

#include <variant>

#include "wire/little_endian.h"

namespace tcpms::routing {

void encode_router_image(const RouterImage& image, std::string& out) {
  wire::LeWriter w(out);
  w.u8(kRouterImageVersion);
  w.u64(image.incarnation);
  w.u32(static_cast<uint32_t>(image.peers.size()));
  for (const RouterImage::Peer& p : image.peers) {
    w.u16(p.peer);
    w.u64(p.incarnation);
    w.str32(p.column);
    w.u32(static_cast<uint32_t>(p.shared_groups.size()));
    for (const auto& [share, filter] : p.shared_groups) {
      w.str16(share);
      w.str16(filter);
    }
  }
  w.u32(image.ticket_counter);
  w.u32(static_cast<uint32_t>(image.directory.size()));
  for (const RouterImage::Entry& e : image.directory) {
    w.u64(e.key);
    w.u16(e.holder);
    w.u32(e.ticket);
  }
  w.u32(static_cast<uint32_t>(image.held.size()));
  for (const auto& [id, ticket] : image.held) {
    w.str16(id);
    w.u32(ticket);
  }
}

RouterImageResult decode_router_image(ByteView bytes, uint32_t peer_slots) {
  RouterImageResult r;
  wire::LeReader in(bytes);
  if (in.u8() != kRouterImageVersion) {
    r.error = "router image: unknown version";
    return r;
  }
  RouterImage& image = r.image;
  image.incarnation = in.u64();
  const uint32_t peers = in.count(2 + 8 + 4 + 4);
  for (uint32_t i = 0; i < peers && in.ok(); ++i) {
    RouterImage::Peer& p = image.peers.emplace_back();
    p.peer = in.u16();
    p.incarnation = in.u64();
    p.column = std::string(as_chars(in.str32()));
    const uint32_t groups = in.count(2 + 2);
    for (uint32_t g = 0; g < groups && in.ok(); ++g) {
      std::string share(in.text16());
      std::string filter(in.text16());
      p.shared_groups.emplace_back(std::move(share), std::move(filter));
    }
    if (!in.ok()) break;
    if (p.peer >= peer_slots) {
      r.error = "router image: a peer beyond the peer slots";
      return r;
    }
    if (!p.column.empty()) {
      auto f = decode(as_bytes(p.column));
      if (!f || !std::holds_alternative<InterestSnapshot>(*f)) {
        r.error = "router image: a column that is not an interest snapshot";
        return r;
      }
    }
  }
  image.ticket_counter = in.u32();
  const uint32_t entries = in.count(8 + 2 + 4);
  image.directory.reserve(entries);
  for (uint32_t i = 0; i < entries && in.ok(); ++i) {
    RouterImage::Entry e;
    e.key = in.u64();
    e.holder = in.u16();
    e.ticket = in.u32();
    if (in.ok() && e.holder >= peer_slots) {
      r.error = "router image: a directory entry held beyond the peer slots";
      return r;
    }
    image.directory.push_back(e);
  }
  const uint32_t held = in.count(2 + 4);
  for (uint32_t i = 0; i < held && in.ok(); ++i) {
    std::string id(in.text16());
    const uint32_t ticket = in.u32();
    image.held.emplace_back(std::move(id), ticket);
  }
  if (!in.ok()) r.error = "router image: truncated";
  else if (in.remaining() != 0) r.error = "router image: bytes after the end";
  return r;
}

}  // namespace tcpms::routing
