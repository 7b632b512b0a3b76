// The upgrade handover of a cluster node (docs/upgrade.md, "A cluster node"; the item:
// cluster/continuation.h): the new process goes on as the same node, and the other nodes
// notice nothing.
//
// Old process: hold_cluster_input() once its clients' input is held (the node's stream is
// read no more, and what was read reaches the connections before they move);
// cluster_state_item() with the other state items (the node's frames are out, its sequence
// stops there); release on a rollback, stop_handed_over() at the commit (RedisTransport).
// New process: continue_cluster_node() for the item, before its transport starts.
//
// Thread rules: main's thread.
#pragma once

#include <optional>
#include <string>

#include "cluster/redis_transport.h"
#include "routing/peer_router.h"
#include "tcpms/bytes.h"
#include "tcpms/server.h"

namespace tcpms::app {

void hold_cluster_input(cluster::RedisTransport& transport, Server& server);
// The node's State frame item, or nothing (`error` says why: the handover must stop).
std::optional<std::string> cluster_state_item(cluster::RedisTransport& transport,
                                              routing::PeerRouter& router, std::string& error);
// False (logged) when the item is malformed or cannot be continued here.
bool continue_cluster_node(ByteView item, cluster::RedisTransport* transport,
                           routing::PeerRouter* router);

}  // namespace tcpms::app
