// MqttHandler, the persistent store's part on a loop: sessions read back at start-up, and
// output held until the store has what it acknowledges (every-message sync). The state
// changes themselves are written where they happen, through SessionStore (session_store.h).
#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "mqtt/topic.h"

namespace tcpms::broker {

using mqtt::PacketType;
using mqtt::QoS;
using mqtt::ReasonCode;

// --- start-up --------------------------------------------------------------------------------

void MqttHandler::install_recovered(std::vector<store::RecoveredSession>& sessions) {
  for (store::RecoveredSession& r : sessions) install_one(r);
  sessions.clear();
  sessions.shrink_to_fit();
  update_subscription_count();
  if (offline_timers_.size() != 0) loop_.post([this] { arm_offline_loop_timer(); });
}

void MqttHandler::install_one(store::RecoveredSession& r) {
  Session* s = nullptr;
  auto claim = broker_.registry().claim(r.client_id, loop_.index(), ConnId{}, [&] {
    s = new Session(r.client_id);
    return s;
  });
  if (claim.kind != ClientRegistry::ClaimKind::kCreated) return;  // ids are unique in a store
  s->version = r.session.version;
  s->clean = false;
  s->offline = true;
  s->stored = true;
  stats_.sessions_offline.add();
  for (const auto& [filter, sub] : r.subscriptions) {
    // Checked against this server's limits too (they may have changed since).
    if (mqtt::validate_topic_filter(filter, cfg_.max_topic_levels) != mqtt::TopicError::kOk) {
      store_->delete_subscription(*s, filter);
      continue;
    }
    if (const auto shared = mqtt::parse_shared_subscription(filter)) {
      // Back in its group as an offline member, as a session moved here from another process
      // joins (import_image): the router tells the other processes it has a member here. What
      // it had queued stays its own; the group's new messages skip it while it is offline.
      add_shared(*s, shared->share_name, shared->filter, sub.qos, sub.options, sub.subscription_id);
      continue;
    }
    add_subscription(*s, filter, sub.qos, nullptr, sub.options, sub.subscription_id);
  }
  if (!r.messages.empty() || !r.inbound.empty()) {
    SessionQueues& q = s->queues();
    q.set_last_packet_id(r.session.last_packet_id);
    for (store::RecoveredMessage& rm : r.messages) {
      OutMessage m;
      m.topic = rm.body.topic;
      m.payload = rm.body.payload;
      m.props.wire = rm.body.properties;
      m.props.expires_at_ms = SessionStore::to_steady_ms(rm.body.expires_at_ms);
      m.qos = rm.ref.qos;
      m.retain = rm.ref.retain;
      m.sub_ids = rm.ref.subscription_ids;
      m.packet_id = rm.ref.packet_id;
      m.state = static_cast<OutMessage::State>(rm.ref.state);
      m.store_seq = rm.seq;
      m.store_body = rm.ref.body_id;
      const uint64_t seq = m.store_seq, body = m.store_body;
      bool kept;
      if (m.state == OutMessage::State::kQueued) {
        kept = q.enqueue(std::move(m), cfg_.max_queued_messages, cfg_.max_session_bytes);
        if (kept) stats_.queued_messages.add();
      } else {
        kept = q.restore_inflight(std::move(m));
        if (kept) stats_.inflight_messages.add();
      }
      if (!kept) {  // over this server's limits now: dropped, counted, and not kept on disk
        stats_.queue_dropped.add();
        store_->message_done(*s, seq, body);
      }
    }
    for (uint16_t id : r.inbound)
      if (!q.incoming_seen(id)) q.incoming_add(id);
    s->trim();
  }
  if (s->is_v5()) {
    SessionExtra& x = s->extra_ref();
    x.session_expiry_s = r.session.expiry_s;
    if (r.session.expiry_s != store::kNeverExpires) {
      // Offline since it was written (or since now, if it had a connection when the server
      // stopped): what is left of its Session Expiry Interval.
      const uint64_t since = r.session.offline_since_ms != 0
                                 ? r.session.offline_since_ms
                                 : SessionStore::to_unix_ms(steady_ms());
      x.expires_at_ms = SessionStore::to_steady_ms(since + uint64_t{r.session.expiry_s} * 1000);
    }
    if (r.will) {
      auto w = std::make_unique<Will>();
      w->topic = r.will->topic;
      w->payload = r.will->payload;
      w->qos = r.will->qos;
      w->retain = r.will->retain;
      w->props = r.will->properties;
      w->expiry_s = r.will->expiry_s;
      w->delay_s = r.will->delay_s;
      x.delayed_will = std::move(w);
      x.will_at_ms = SessionStore::to_steady_ms(r.will->due_ms);
    }
    offline_timers_.arm(*s);
  }
  recovered_ids_.push_back(r.client_id);
}

void MqttHandler::announce_recovered() {
  // Each recovered session is held here, offline: registered at its id's home, so a client
  // reconnecting to another process or node gets it from here (Router::enroll; given up if
  // the id is held elsewhere by now).
  for (const std::string& id : recovered_ids_) broker_.router().enroll(id, 0);
  recovered_ids_.clear();
  recovered_ids_.shrink_to_fit();
}

void MqttHandler::store_whole_session(Session& s) {
  store_->save_session(s);
  for (const SubRecord& r : s.subs)
    store_->put_subscription(s, tree_.filter_of(r.node), r.node->entries()[r.index].qos(),
                             static_cast<uint8_t>(r.options), r.subscription_id);
  if (s.extra && s.extra->shared)
    for (const SharedSub& e : *s.extra->shared)
      store_->put_subscription(s, subscribed_filter(e), e.qos, e.options, e.subscription_id);
  if (!s.has_queues()) return;
  for (OutMessage& m : s.queues_->inflight()) store_->message_started(s, m);
  for (OutMessage& m : s.queues_->queued()) store_->message_queued(s, m);
  for (uint16_t id : s.queues_->incoming()) store_->inbound_added(s, id);
}

// --- output held until durable ---------------------------------------------------------------

uint64_t MqttHandler::hold_output(Connection& c, ByteView head, const SharedBytes& body,
                                  uint32_t echoes) {
  store::StoreWriter& w = store_->writer();
  const uint64_t wait = store_->last_seq();
  if (gate_->empty() && echoes == 0 && w.durable_seq() >= wait) {
    // Nothing waits and the store has everything: no need to hold.
    if (body.empty())
      c.enqueue(head);
    else
      c.enqueue_shared(head, body);
    return 0;
  }
  const uint64_t token = gate_->hold(c.id(), head, body, wait, echoes);
  ask_store_for_gate();
  return token;
}

void MqttHandler::ask_store_for_gate() {
  if (gate_->empty()) return;
  // True: already durable (no notice is owed for it), so release now.
  if (store_->writer().want(store_listener_, gate_->wanted()))
    gate_->release(store_->writer().durable_seq());
}

void MqttHandler::on_durable(uint64_t durable) {
  if (!gate_) return;
  gate_->release(durable);
  ask_store_for_gate();  // what is left waits for a later commit
}

void MqttHandler::gate_echo(uint64_t token, uint64_t seq) {
  if (!gate_) return;
  gate_->echo(token, seq);
  gate_->release(store_->writer().durable_seq());
  ask_store_for_gate();
}

void MqttHandler::gate_answer(uint64_t token, bool ok, uint64_t seq) {
  if (token & DurableWait::kHandOff) {  // not the gate's: a shared message handed on
    handoff_answered(token, ok);
    return;
  }
  if (!gate_) return;
  if (!ok) {
    gate_->fail(token);
    gate_->release(store_->writer().durable_seq());
    ask_store_for_gate();
    return;
  }
  gate_echo(token, seq);
}

void MqttHandler::answer_wait(const DurableWait& wait, bool delivered_here) {
  if (wait.is_handoff()) {
    // Delivered here: the taker's store writes for it are submitted by now, before the
    // leaving member's copy is deleted on its loop (one store, committed in order).
    if (wait.loop == loop_.index())
      handoff_answered(wait.token, delivered_here);
    else
      broker_.durable_answered(wait.loop, wait.token, delivered_here);
    return;
  }
  const uint64_t seq = delivered_here ? store_last_seq() : 0;
  if (wait.loop_waits()) {
    if (wait.loop == loop_.index())
      gate_echo(wait.token, seq);
    else
      broker_.durable_answered(wait.loop, wait.token, true, seq);
  }
  if (!wait.peer_waits()) return;
  if (!holds_output() || seq == 0) {
    broker_.router().durable_done(wait.peer, wait.request);
    return;
  }
  // The answer to the process waits for this loop's writes, in the gate's order.
  gate_->hold_for_peer(wait.peer, wait.request, seq, 0);
  gate_->release(store_->writer().durable_seq());
  ask_store_for_gate();
}

void MqttHandler::send_ack_after_store(Connection& c, Session& s, PacketType t, uint16_t id,
                                       ReasonCode code) {
  if (!holds_output()) {
    send_ack(c, s, t, id, code);
    return;
  }
  mqtt::PublishResponse r;
  r.type = t;
  r.packet_id = id;
  r.reason = code;
  size_t n = mqtt::encoded_size(r, s.version);
  scratch_.resize(std::max(scratch_.size(), n));
  n = mqtt::encode(r, s.version, mqtt::OutBytes(scratch_.data(), n));
  hold_output(c, ByteView(scratch_.data(), n), {}, 0);
  stats_.packets_out[static_cast<uint8_t>(t) & 15].add();
}

}  // namespace tcpms::broker
