// MqttPushTarget: the admin push API answered by the broker. Publish and send-by-client-id go
// through Broker::publish / Broker::send_to_client (which routes to another node or worker
// through the Router when the client is not here); the client listing, lookup and kick are by
// MQTT client id and include offline persistent sessions. A raw send by numeric connection id
// stays the engine's.
//
// A send routed to another node waits (bounded by `routed_wait`) for the router's answer, so
// the API says 200 for an id a node held and 404 for one nobody holds.
//
// Thread rules: admin HTTP threads (the broker's entry points are thread-safe).
#pragma once

#include <chrono>

#include "admin/engine_push_target.h"
#include "broker/broker.h"

namespace tcpms::app {

class MqttPushTarget final : public admin::EnginePushTarget {
 public:
  MqttPushTarget(Server& server, broker::Broker& broker,
                 std::chrono::milliseconds routed_wait = std::chrono::milliseconds(5000))
      : EnginePushTarget(server, "mqtt"), broker_(broker), routed_wait_(routed_wait) {}

  admin::PushResult publish(const admin::PublishRequest& request) override;
  admin::PushResult send_to_client(std::string_view client_id,
                                   const admin::PublishRequest& message) override;
  admin::ClientPage list_clients(std::string_view cursor, size_t limit) override;
  std::optional<admin::ClientInfo> client(std::string_view id) override;
  admin::PushResult kick(std::string_view id) override;

 private:
  broker::Broker& broker_;
  const std::chrono::milliseconds routed_wait_;
};

}  // namespace tcpms::app
