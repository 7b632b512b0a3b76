// What the interest tests share: applying an encoded update to a RemoteInterest, and asking
// whether a topic names a peer.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "routing/frame.h"
#include "routing/peer_set.h"
#include "routing/remote_interest.h"

namespace tcpms::routing {

// Applies `frame` (an encoded InterestSnapshot or InterestDelta of `from`'s column) to `remote`.
inline void apply(RemoteInterest& remote, PeerId from, const std::string& frame) {
  auto f = decode(as_bytes(frame));
  ASSERT_TRUE(f.has_value());
  if (auto* s = std::get_if<InterestSnapshot>(&*f)) remote.apply(from, *s);
  else if (auto* d = std::get_if<InterestDelta>(&*f)) remote.apply(from, *d);
  else FAIL() << "not an interest frame";
}

inline bool names(const RemoteInterest& remote, std::string_view topic, PeerId p) {
  PeerSet s;
  remote.match(topic, s);
  return s.has(p);
}

}  // namespace tcpms::routing
