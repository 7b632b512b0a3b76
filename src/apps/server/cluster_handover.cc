#include "cluster_handover.h"

#include <spdlog/spdlog.h>

#include "on_loop.h"

namespace tcpms::app {

void hold_cluster_input(cluster::RedisTransport& transport, Server& server) {
  transport.hold_input();
  run_posted_hops(server);  // what the stream thread read reaches the sessions before they move
}

std::optional<std::string> cluster_state_item(cluster::RedisTransport& transport,
                                              routing::PeerRouter& router, std::string& error) {
  error = transport.hold_output();
  if (!error.empty()) return std::nullopt;
  cluster::NodeHandover h;
  h.node = transport.continuation();
  h.router = router.export_image();
  std::string item;
  cluster::encode_node_item(h, item);
  spdlog::info("SIGUSR2: cluster node: slot {}, {} other node(s) up, sequence {}, stream read "
               "to {}", h.node.slot, h.node.peers.size(), h.node.seq, h.node.last_read_id);
  return item;
}

bool continue_cluster_node(ByteView item, cluster::RedisTransport* transport,
                           routing::PeerRouter* router) {
  if (transport == nullptr || router == nullptr) {
    spdlog::error("handover: the old process is a cluster node and this one is not configured "
                  "as one (cluster.redis)");
    return false;
  }
  auto decoded = cluster::decode_node_item(item, transport->peer_slots());
  if (!decoded.ok()) {
    spdlog::error("handover: {}", decoded.error);
    return false;
  }
  if (std::string err = transport->continue_from(decoded.handover.node); !err.empty()) {
    spdlog::error("handover: cannot go on as the same cluster node: {}", err);
    return false;
  }
  router->continue_from(decoded.handover.router);
  return true;
}

}  // namespace tcpms::app
