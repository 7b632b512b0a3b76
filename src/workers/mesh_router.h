// MeshRouter: the broker's Router across the worker processes of one server (PeerMesh).
// A local publish goes once to every other worker, which delivers it to its own subscribers
// (and keeps it if retained, so every worker holds every retained message); a push to a
// client id this worker does not hold goes to all of them and the one holding it delivers.
//
// Every publish is broadcast: with the few workers one box runs (tens), that costs one
// shared frame and one enqueue per peer. Filtering by the peers' subscriptions would save
// that at the price of a route table per peer; it is left for when a box runs many workers.
#pragma once

#include "broker/broker.h"
#include "broker/router.h"
#include "workers/peer_mesh.h"

namespace tcpms::workers {

class MeshRouter final : public broker::Router {
 public:
  enum Kind : uint8_t { kPublish = 1, kPush = 2, kRawSend = 3, kRawClose = 4 };

  explicit MeshRouter(PeerMesh& mesh) : mesh_(mesh) {}

  void on_local_publish(const SharedBytes& topic, const SharedBytes& payload, mqtt::QoS qos,
                        bool retain) override;
  bool push_to_client(std::string_view client_id, const SharedBytes& topic,
                      const SharedBytes& payload, mqtt::QoS qos, PushDone done) override;

  // Frames arriving from other workers (PeerMesh's receive callback).
  static void receive(broker::Broker* broker, Server& server, uint8_t kind, ByteView body);

 private:
  PeerMesh& mesh_;
};

// Frame bodies, shared by the router and the engine-level raw push (apps/server).
std::string encode_raw_send(ConnId id, ByteView bytes);

}  // namespace tcpms::workers
