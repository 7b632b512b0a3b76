// MqttPushTarget: the admin API answered by the broker. Publish and send-by-client-id go
// through Broker::publish_counted / Broker::send_to_client (which routes to another node or
// worker through the Router when the client is not here); clients, sessions, subscriptions,
// retained messages and the topic viewer's taps are the broker's control-plane entry points
// (broker.h). A raw send by numeric connection id stays the engine's.
//
// A send routed to another node waits (bounded by `routed_wait`) for the router's answer, so
// the API says 200 for an id a node held and 404 for one nobody holds.
//
// With worker processes each worker answers for itself (its clients, its receivers), on a
// private socket; worker 0's front door (admin/front_door.h) asks them all.
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
  admin::ClientPage list_clients(const admin::ClientQuery& q) override;
  std::optional<admin::ClientInfo> client(std::string_view id) override;
  admin::PushResult kick(std::string_view id) override;
  void add_stats(nlohmann::json& out) override;

  bool has_sessions() const override { return true; }
  admin::PushResult delete_session(std::string_view id) override;
  std::optional<std::vector<admin::SubscriptionRow>> subscriptions(std::string_view filter,
                                                                   bool match_topic,
                                                                   size_t limit) override;
  admin::PushResult count_receivers(std::string_view topic) override;
  admin::RetainedResult list_retained(std::string_view filter) override;
  admin::RetainedResult get_retained(std::string_view topic) override;
  admin::PushResult delete_retained(std::string_view topic) override;
  admin::TapResult open_tap(std::string_view filter) override;
  admin::TapResult read_tap(uint64_t id, uint64_t after) override;
  admin::PushResult close_tap(uint64_t id) override;

 private:
  broker::Broker& broker_;
  const std::chrono::milliseconds routed_wait_;
};

}  // namespace tcpms::app
