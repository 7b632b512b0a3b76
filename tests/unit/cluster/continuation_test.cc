// The handover item of a cluster node (cluster/continuation.h): what the new process needs to
// go on as the same node, encoded and checked as untrusted input.
#include "cluster/continuation.h"

#include <gtest/gtest.h>

#include <string>

namespace tcpms::cluster {
namespace {

NodeHandover sample() {
  NodeHandover h;
  h.node.incarnation = "123-456";
  h.node.slot = 1;
  h.node.seq = 9000;
  h.node.last_read_id = "1700000000000-3";
  h.node.seen = {{"b/77-88", 41}};
  h.node.peers = {{0, "b", "77-88"}};
  h.router.incarnation = 5;
  h.router.directory = {{11, 0, 2}};
  return h;
}

TEST(NodeItem, RoundTrips) {
  std::string bytes;
  encode_node_item(sample(), bytes);
  EXPECT_EQ(bytes[0], kNodeItem);
  auto r = decode_node_item(as_bytes(bytes), 4);
  ASSERT_TRUE(r.ok()) << r.error;
  const NodeContinuation& n = r.handover.node;
  EXPECT_EQ(n.incarnation, "123-456");
  EXPECT_EQ(n.slot, 1);
  EXPECT_EQ(n.seq, 9000u);
  EXPECT_EQ(n.last_read_id, "1700000000000-3");
  ASSERT_EQ(n.seen.size(), 1u);
  EXPECT_EQ(n.seen[0].second, 41u);
  ASSERT_EQ(n.peers.size(), 1u);
  EXPECT_EQ(n.peers[0].name, "b");
  EXPECT_EQ(n.peers[0].incarnation, "77-88");
  // The router image comes back decoded (no second decode for the caller).
  const routing::RouterImage& image = r.handover.router;
  EXPECT_EQ(image.incarnation, 5u);
  ASSERT_EQ(image.directory.size(), 1u);
  EXPECT_EQ(image.directory[0].key, 11u);
  EXPECT_EQ(image.directory[0].holder, 0);
  EXPECT_EQ(image.directory[0].ticket, 2u);
}

TEST(NodeItem, RefusesWhatItCannotTrust) {
  std::string bytes;
  encode_node_item(sample(), bytes);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_node_item(as_bytes(std::string_view(bytes).substr(0, n)), 4).ok()) << n;
  EXPECT_FALSE(decode_node_item(as_bytes(bytes + "x"), 4).ok());
  EXPECT_FALSE(decode_node_item(as_bytes(bytes), 1).ok());  // slot 1 beyond one slot
  std::string other = bytes;
  other[1] = 2;  // version
  EXPECT_FALSE(decode_node_item(as_bytes(other), 4).ok());
  other = bytes;
  other[0] = 'R';
  EXPECT_FALSE(decode_node_item(as_bytes(other), 4).ok());
  NodeHandover h = sample();
  h.node.peers[0].slot = 1;  // its own slot
  bytes.clear();
  encode_node_item(h, bytes);
  EXPECT_FALSE(decode_node_item(as_bytes(bytes), 4).ok());
  h = sample();
  h.node.incarnation.clear();
  bytes.clear();
  encode_node_item(h, bytes);
  EXPECT_FALSE(decode_node_item(as_bytes(bytes), 4).ok());
  h = sample();
  h.router.directory[0].holder = 9;  // a holder beyond the slots: the image is refused
  bytes.clear();
  encode_node_item(h, bytes);
  EXPECT_FALSE(decode_node_item(as_bytes(bytes), 4).ok());
  // An image that is not one at all: the router image is last, its first byte the version.
  std::string image;
  routing::encode_router_image(sample().router, image);
  bytes.clear();
  encode_node_item(sample(), bytes);
  bytes[bytes.size() - image.size()] = '?';
  EXPECT_FALSE(decode_node_item(as_bytes(bytes), 4).ok());
}

}  // namespace
}  // namespace tcpms::cluster
