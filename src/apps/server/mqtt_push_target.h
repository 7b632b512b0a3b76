// MqttPushTarget: the admin push API's publish and send-by-client-id answered by the broker
// (Broker::publish, Broker::send_to_client, which routes to another node or worker through
// the Router when the client is not here). Listing, kick and raw sends stay the engine's.
//
// A stopgap so POST /api/v1/publish and /api/v1/clients/{id}/send work for MQTT (and across
// cluster nodes); the full target of docs/control-plane.md (sessions in the listing, kick by
// client id, MQTT stats) belongs with the broker and replaces this one.
//
// Thread rules: admin HTTP threads (the broker's entry points are thread-safe).
#pragma once

#include "admin/engine_push_target.h"
#include "broker/broker.h"

namespace tcpms::app {

class MqttPushTarget final : public admin::EnginePushTarget {
 public:
  MqttPushTarget(Server& server, broker::Broker& broker)
      : EnginePushTarget(server, "mqtt"), broker_(broker) {}

  admin::PushResult publish(const admin::PublishRequest& request) override;
  admin::PushResult send_to_client(std::string_view client_id,
                                   const admin::PublishRequest& message) override;

 private:
  broker::Broker& broker_;
};

}  // namespace tcpms::app
