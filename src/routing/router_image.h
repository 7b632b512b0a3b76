// RouterImage: what a PeerRouter knows of the other peers and of the client ids homed at it,
// handed to the process that goes on as the same peer after an upgrade (a cluster node:
// docs/upgrade.md, "A cluster node"). The other peers never hear of the change, so nothing
// they told the old process is told again: it travels here.
//
//   u8 version (1), u64 this peer's incarnation (its Hellos'),
//   u32 peers, each: u16 peer, u64 its incarnation (from its Hello, 0: none yet),
//     str32 its interest column (an InterestSnapshot frame; empty: not known),
//     u32 shared groups with members there, each: str16 share, str16 filter
//   u32 the directory's ticket counter, u32 entries, each: u64 key, u16 holder, u32 ticket
//   u32 sessions held here, each: str16 client id, u32 the ticket its home has for it (the
//     sessions themselves travel as connection images and offline sessions, which carry none)
//
// Pure functions, no I/O; the decoder treats its input as untrusted (fuzzed:
// tests/fuzz/node_handover_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "routing/frame.h"
#include "tcpms/bytes.h"

namespace tcpms::routing {

inline constexpr uint8_t kRouterImageVersion = 1;

struct RouterImage {
  struct Peer {
    PeerId peer = kNoPeer;
    uint64_t incarnation = 0;
    std::string column;  // an encoded InterestSnapshot, or empty
    std::vector<std::pair<std::string, std::string>> shared_groups;  // (share, filter)
  };
  struct Entry {
    uint64_t key = 0;
    PeerId holder = kNoPeer;
    uint32_t ticket = 0;
  };
  uint64_t incarnation = 0;
  std::vector<Peer> peers;
  uint32_t ticket_counter = 0;
  std::vector<Entry> directory;
  std::vector<std::pair<std::string, uint32_t>> held;  // (client id, ticket)
};

void encode_router_image(const RouterImage& image, std::string& out);

struct RouterImageResult {
  RouterImage image;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
// Refused: another version, a peer or holder at or above `peer_slots`, a column that is not
// an InterestSnapshot frame, a count the input cannot hold, bytes left over.
RouterImageResult decode_router_image(ByteView bytes, uint32_t peer_slots);

}  // namespace tcpms::routing
