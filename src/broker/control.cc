// MqttHandler, control-plane requests on this loop (Broker posts them): push to one client,
// kick, and the client listing.
#include "broker/mqtt_handler.h"

namespace tcpms::broker {

using mqtt::ReasonCode;

SendResult MqttHandler::push_to_client(std::string_view client_id, Session* s, const Message& m) {
  if (!broker_.registry().owns(client_id, s, loop_.index())) return SendResult::kNotConnected;
  const bool connected = s->conn != nullptr;
  deliver(*s, m, m.qos, false);
  return connected ? SendResult::kSent : SendResult::kQueued;
}

void MqttHandler::kick(std::string_view client_id, Session* s) {
  if (!broker_.registry().owns(client_id, s, loop_.index()) || s->conn == nullptr) return;
  if (s->is_v5()) {
    send_disconnect(*s->conn, ReasonCode::kAdministrativeAction);
    s->conn->close_after_flush();
    return;
  }
  s->conn->close(CloseReason::kKicked);
}

void MqttHandler::collect_clients(std::vector<ClientInfo>& out) {
  std::vector<Session*> owned;
  broker_.registry().for_each_owned_by(loop_.index(),
                                       [&](const RegistryEntry& e) { owned.push_back(e.session); });
  for (Session* s : owned) {
    ClientInfo ci;
    ci.client_id = std::string(s->client_id());
    ci.loop = loop_.index();
    ci.connected = s->conn != nullptr;
    if (s->conn) ci.conn = s->conn->id();
    ci.subscriptions = s->subs.size();
    ci.connected_since_s = s->connected_since_s;
    if (s->has_queues()) {
      ci.queued = static_cast<uint32_t>(s->queues_->queued_count());
      ci.inflight = static_cast<uint32_t>(s->queues_->inflight_count());
    }
    out.push_back(std::move(ci));
  }
}

}  // namespace tcpms::broker
