#include "mqtt_push_target.h"

namespace tcpms::app {

admin::PushResult MqttPushTarget::publish(const admin::PublishRequest& r) {
  if (!broker_.publish(r.topic, as_bytes(r.payload), static_cast<mqtt::QoS>(r.qos), r.retain))
    return {admin::PushStatus::kInvalid, "not a valid topic name or QoS", 0};
  return {admin::PushStatus::kDone, "published", 0};
}

admin::PushResult MqttPushTarget::send_to_client(std::string_view client_id,
                                                 const admin::PublishRequest& m) {
  auto result = broker_.send_to_client(client_id, m.topic, as_bytes(m.payload),
                                       static_cast<mqtt::QoS>(m.qos));
  switch (result) {
    case broker::SendResult::kSent:
      return {admin::PushStatus::kDone, "sent", 1};
    case broker::SendResult::kRouted:
      return {admin::PushStatus::kDone, "routed to the node or worker that holds it", 1};
    case broker::SendResult::kQueued:
      return {admin::PushStatus::kQueued, "queued in its offline session", 0};
    case broker::SendResult::kInvalid:
      return {admin::PushStatus::kInvalid, "not a valid topic name or QoS", 0};
    case broker::SendResult::kNotConnected:
      break;
  }
  return {admin::PushStatus::kNotFound, "no client '" + std::string(client_id) + "'", 0};
}

}  // namespace tcpms::app
