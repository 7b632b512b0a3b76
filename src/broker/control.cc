// MqttHandler, control-plane requests on this loop (Broker posts them): push to one client,
// kick, client listings and details, deleting an offline session, finding subscriptions.
#include <algorithm>

#include "broker/mqtt_handler.h"
#include "mqtt/topic.h"

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
  note_close(*s->conn, "kicked by the admin API");
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
    if (s->conn) {
      ci.conn = s->conn->id();
      ci.transport = s->conn->transport_name();
    }
    ci.subscriptions = subscription_total(*s);
    ci.connected_since_s = s->connected_since_s;
    ci.version = s->version;
    ci.persistent = !s->clean;
    if (s->has_queues()) {
      ci.queued = static_cast<uint32_t>(s->queues_->queued_count());
      ci.inflight = static_cast<uint32_t>(s->queues_->inflight_count());
    }
    out.push_back(std::move(ci));
  }
}

std::optional<ClientInfo> MqttHandler::describe_client(std::string_view client_id, Session* s,
                                                       bool with_subscriptions) {
  auto e = broker_.registry().find(client_id);
  if (!e || e->session != s || e->loop != loop_.index() || e->in_transit) return std::nullopt;
  ClientInfo ci;
  ci.client_id = std::string(client_id);
  ci.loop = loop_.index();
  ci.connected = s->conn != nullptr;
  ci.subscriptions = s->subs.size();
  ci.connected_since_s = s->connected_since_s;
  ci.version = s->version;
  ci.persistent = !s->clean;
  if (s->has_queues()) {
    ci.queued = static_cast<uint32_t>(s->queues_->queued_count());
    ci.inflight = static_cast<uint32_t>(s->queues_->inflight_count());
  }
  ci.described = true;
  if (Connection* c = s->conn) {
    ci.conn = c->id();
    ci.transport = c->transport_name();
    sockaddr_storage peer{};
    if (c->peer_address(peer)) ci.peer = ClientLog::peer_text(peer);
    // The connection's deadline is 1.5 x the Keep Alive the client asked for (attach()).
    ci.keep_alive_s = static_cast<uint16_t>(c->timeout_ms() / 1500);
    ci.pending_output_bytes = c->pending_output_bytes();
  }
  if (auto user = s->username()) ci.username = std::string(*user);
  if (s->extra) {
    ci.session_expiry_s = s->extra->session_expiry_s;
    ci.has_will = s->extra->will != nullptr || s->extra->delayed_will != nullptr;
  }
  if (with_subscriptions) {
    for (const SubRecord& r : s->subs) {
      SubscriptionInfo si;
      si.client_id = ci.client_id;
      si.filter = tree_.filter_of(r.node);
      si.qos = r.node->entries()[r.index].qos();
      si.no_local = (r.options & kSubNoLocal) != 0;
      si.retain_as_published = (r.options & kSubRetainAsPublished) != 0;
      si.subscription_id = r.subscription_id;
      ci.subscription_list.push_back(std::move(si));
    }
    if (s->extra && s->extra->shared) {
      for (const SharedSub& shared : *s->extra->shared) {
        SubscriptionInfo si;
        si.client_id = ci.client_id;
        si.filter = subscribed_filter(shared);
        si.qos = shared.qos;
        si.retain_as_published = (shared.options & kSubRetainAsPublished) != 0;
        si.subscription_id = shared.subscription_id;
        ci.subscription_list.push_back(std::move(si));
      }
    }
    std::sort(ci.subscription_list.begin(), ci.subscription_list.end(),
              [](const auto& a, const auto& b) { return a.filter < b.filter; });
  }
  return ci;
}

SessionDeleteResult MqttHandler::delete_session(std::string_view client_id, Session* s) {
  if (!broker_.registry().owns(client_id, s, loop_.index())) return SessionDeleteResult::kNotFound;
  if (s->conn != nullptr) return SessionDeleteResult::kConnected;
  discard_session(s);  // subscriptions, queued messages, a delayed will (published: it ended)
  return SessionDeleteResult::kDeleted;
}

void MqttHandler::collect_subscriptions(std::string_view filter, bool match_topic, size_t limit,
                                        std::vector<SubscriptionInfo>& out) {
  auto add = [&](Session* s, const SubRecord& r) {
    SubscriptionInfo si;
    si.client_id = std::string(s->client_id());
    si.filter = tree_.filter_of(r.node);
    si.qos = r.node->entries()[r.index].qos();
    si.no_local = (r.options & kSubNoLocal) != 0;
    si.retain_as_published = (r.options & kSubRetainAsPublished) != 0;
    si.subscription_id = r.subscription_id;
    out.push_back(std::move(si));
  };
  if (!match_topic) {
    TopicNode* node = tree_.find(filter);
    if (node == nullptr) return;
    const SubEntry* e = node->entries();
    for (uint32_t i = 0; i < node->sub_count() && out.size() < limit; ++i) {
      Session* s = e[i].session();
      if (const SubRecord* r = s->subs.find(node)) add(s, *r);
    }
    return;
  }
  // Every subscription matching the topic: the sessions the tree finds, then which of each
  // session's filters match (a session is visited once per matching filter: seen once here).
  std::vector<Session*> sessions;
  tree_.match(filter, [&](Session* s, mqtt::QoS) { sessions.push_back(s); });
  std::sort(sessions.begin(), sessions.end());
  sessions.erase(std::unique(sessions.begin(), sessions.end()), sessions.end());
  for (Session* s : sessions) {
    for (const SubRecord& r : s->subs) {
      if (out.size() >= limit) return;
      if (mqtt::topic_matches(tree_.filter_of(r.node), filter)) add(s, r);
    }
  }
}

}  // namespace tcpms::broker
