// MqttHandler, sessions moving between the loops of one process: a client reconnecting on
// another loop than its session's gets the session moved to it (the protocol is in
// client_registry.h).
#include "broker/mqtt_handler.h"
#include "broker/pending_connect.h"

namespace tcpms::broker {

using mqtt::QoS;

// Everything a session handover carries between loops. If a task carrying it is dropped
// (loop stopping), the destructor takes the session out of the registry, then frees it, so
// no registry entry is left pointing at freed memory.
struct MqttHandler::Handover {
  ClientRegistry* registry = nullptr;
  std::string client_id;
  Session* session = nullptr;
  uint32_t from_loop = 0;
  uint32_t to_loop = 0;
  ConnId new_conn;
  PendingConnect* pending = nullptr;  // only compared, never dereferenced, off its loop
  bool clean = true;
  uint32_t ticket = 0;  // the new connection's claim ticket (0: the router claims no ids)
  bool ends_with_connection = true;  // CleanSession 1, or 5.0 Session Expiry Interval 0
  bool present = false;
  // filter, QoS, SubRecord::options, SubRecord::subscription_id
  std::vector<std::tuple<std::string, QoS, uint8_t, uint32_t>> filters;
  bool attached = false;
  ~Handover() {
    if (session != nullptr && attached == false && moved) {
      if (registry != nullptr) registry->remove(client_id, session);
      delete session;
    }
  }
  bool moved = false;  // set once the owner has let go of the session
};

Action MqttHandler::start_handover(Connection& c, PendingConnect* p, const RegistryEntry& entry) {
  MqttHandler* owner = broker_.handler_for(entry.loop);
  if (owner == nullptr) return violation(c, "registry names an unknown loop");
  c.pause_reading();
  auto h = std::make_shared<Handover>();
  h->registry = &broker_.registry();
  h->client_id = p->client_id;
  h->session = entry.session;
  h->from_loop = entry.loop;
  h->to_loop = loop_.index();
  h->new_conn = c.id();
  h->pending = p;
  // A session another process held meanwhile is stale here: it is reset, as for a clean start.
  h->clean = p->clean || p->elsewhere;
  h->ticket = p->ticket;
  h->ends_with_connection = is_v5(p->version) ? p->session_expiry_s == 0 : p->clean;
  owner->loop().post([owner, h] { owner->handover_request(h); });
  return Action::kKeep;
}

void MqttHandler::handover_request(std::shared_ptr<Handover> h) {
  MqttHandler* target = broker_.handler_for(h->to_loop);
  Session* s = h->session;
  if (target == nullptr) return;
  auto e = broker_.registry().find(h->client_id);
  if (e && e->session == s && h->ticket != 0 && e->ticket != 0 && newer_claim(e->ticket, h->ticket)) {
    // A newer connection claimed the id after the one asking: the asking one lost.
    target->loop().post([target, h] { target->handover_superseded(h->new_conn, h->pending); });
    return;
  }
  if (!broker_.registry().begin_handover(h->client_id, s, loop_.index(), h->to_loop, h->new_conn)) {
    // The entry changed meanwhile (the session closed, or moved): the new loop starts over.
    target->loop().post([target, h] { target->handover_retry(h->new_conn, h->pending); });
    return;
  }
  take_over(*s);  // [MQTT-3.1.4-2]; keeps the object: the registry entry is keyed by its id
  offline_timers_.disarm(*s);  // it leaves this loop (its new loop re-arms it if need be)
  if (s->offline) {
    s->offline = false;
    stats_.sessions_offline.sub();
  }
  h->present = !(h->clean || s->clean);
  if (h->present) {
    for (SubRecord& r : s->subs)
      h->filters.emplace_back(tree_.filter_of(r.node), r.node->entries()[r.index].qos(),
                              static_cast<uint8_t>(r.options), uint32_t{r.subscription_id});
    if (s->has_queues()) {
      stats_.queued_messages.sub(static_cast<int64_t>(s->queues_->queued_count()));
      stats_.inflight_messages.sub(static_cast<int64_t>(s->queues_->inflight_count()));
    }
    remove_subscriptions(*s);
  } else {
    reset_session(*s);  // a new session starts with the new connection [MQTT-3.1.2-6]
  }
  h->moved = true;
  target->loop().post([target, h] { target->handover_attach(h); });
}

void MqttHandler::handover_attach(std::shared_ptr<Handover> h) {
  Session* s = h->session;
  h->attached = true;
  s->match_epoch = 0;  // epochs are per loop
  for (auto& [filter, qos, options, sub_id] : h->filters)
    add_subscription(*s, filter, qos, nullptr, options, sub_id);
  update_subscription_count();
  if (s->has_queues()) {
    stats_.queued_messages.add(static_cast<int64_t>(s->queues_->queued_count()));
    stats_.inflight_messages.add(static_cast<int64_t>(s->queues_->inflight_count()));
  }
  broker_.registry().finish_handover(h->client_id, s);
  Connection* c = loop_.find(h->new_conn);
  if (c != nullptr && c->user_data() == h->pending) {
    after_async(*c, attach(*c, s, h->pending, h->present));
    return;
  }
  // The new connection went away while its session travelled.
  if (h->clean || h->ends_with_connection) {
    discard_session(s);
  } else {
    s->offline = true;
    stats_.sessions_offline.add();
    broker_.registry().set_conn(s->client_id(), s, ConnId{});
    arm_offline_timers(*s);  // 5.0: it expires from here
  }
}

void MqttHandler::handover_superseded(ConnId conn, PendingConnect* p) {
  Connection* c = loop_.find(conn);
  if (c != nullptr && c->user_data() == p) after_async(*c, superseded_connect(*c, p));
}

void MqttHandler::handover_retry(ConnId conn, PendingConnect* p) {
  Connection* c = loop_.find(conn);
  if (c != nullptr && c->user_data() == p) after_async(*c, continue_connect(*c, p));
}

}  // namespace tcpms::broker
