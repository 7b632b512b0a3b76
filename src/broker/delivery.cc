// MqttHandler, delivery: a message through the broker (retained store, this loop's matching
// sessions, the other loops, the router) and into each session's QoS 1/2 window or queue.
#include <algorithm>

#include "broker/mqtt_handler.h"
#include "mqtt/property_builder.h"

namespace tcpms::broker {

using mqtt::PropertyId;
using mqtt::QoS;

size_t MqttHandler::window(const Session& s) const noexcept {
  // A 5.0 client's Receive Maximum caps our in-flight window [MQTT-3.3.4-9].
  const size_t client = s.extra ? s.extra->receive_maximum : 65535;
  return std::min<size_t>(cfg_.max_inflight, client);
}

bool MqttHandler::deliverable(Session& s, const OutMessage& m) {
  if (m.props.expires_at_ms != 0 && m.props.expires_at_ms <= steady_ms())
    return false;  // expired before onward delivery started [MQTT-3.3.2-5]
  if (s.max_packet_size() == 0) return true;
  // Sized as it would go out (packet id 1 stands for the one start() assigns).
  mqtt::Publish p;
  p.qos = m.qos;
  p.topic = as_chars(m.topic.view());
  p.packet_id = m.qos == QoS::k0 ? 0 : 1;
  p.payload = m.payload.view();
  size_t props = m.props.wire.size() + m.sub_ids.size() + (m.props.expires_at_ms != 0 ? 5 : 0);
  props_scratch_.resize(props);  // only the size matters for publish_header_size
  p.properties = mqtt::Properties(mqtt::Bytes(props_scratch_.data(), props));
  const size_t n = mqtt::publish_header_size(p, s.version);
  return n != 0 && n + m.payload.size() <= s.max_packet_size();  // [MQTT-3.1.2-25]
}

void MqttHandler::deliver(Session& s, const Message& msg, QoS granted, bool retain_flag,
                          const SharedBytes& sub_ids, uint32_t shared_group) {
  auto out_message = [&] {
    OutMessage out(msg, granted, retain_flag, sub_ids);
    out.shared_group = shared_group;
    return out;
  };
  if (s.conn == nullptr) {
    // Offline persistent session: QoS 1/2 wait for the next connection [MQTT-3.1.2-5]; QoS 0
    // is not kept (the spec allows either; Mosquitto's default does the same).
    if (granted != QoS::k0 && !s.clean) queue_message(s, out_message());
    return;
  }
  Connection& c = *s.conn;
  const bool backlogged = c.pending_output_bytes() > cfg_.max_queued_bytes;
  if (granted == QoS::k0) {
    if (backlogged) {
      stats_.qos0_dropped_slow.add();  // a slow consumer loses QoS 0, nobody else notices
      return;
    }
    send_publish(c, s, msg, sub_ids, PublishSend{.qos = QoS::k0, .retain = retain_flag});
    return;
  }
  SessionQueues& q = s.queues();
  if (backlogged || q.has_queued() || !q.window_has_room(window(s))) {
    queue_message(s, out_message());
    return;
  }
  OutMessage out = out_message();
  if (!deliverable(s, out)) {
    s.trim();
    return;  // expired, or too big for this client: dropped for it alone
  }
  if (!q.admits(out, cfg_.max_session_bytes)) {
    // The window holds the session's byte bound already (large messages not yet acknowledged).
    stats_.queue_dropped.add();
    return;
  }
  start_inflight(c, s, std::move(out));
}

void MqttHandler::start_inflight(Connection& c, Session& s, OutMessage out) {
  OutMessage& m = s.queues().start(std::move(out));
  stats_.inflight_messages.add();
  if (store_) store_->message_started(s, m);
  // QoS 2 to a stored session leaves once its packet id is durable (durable_gate.h).
  send_publish(c, s, m, m.sub_ids,
               PublishSend{.qos = m.qos, .retain = m.retain, .packet_id = m.packet_id,
                           .after_store = s.stored && m.qos == QoS::k2});
}

void MqttHandler::queue_message(Session& s, OutMessage m) {
  SessionQueues& q = s.queues();
  if (q.enqueue(std::move(m), cfg_.max_queued_messages, cfg_.max_session_bytes)) {
    stats_.queued_messages.add();
    if (store_) store_->message_queued(s, q.last_queued());
  } else {
    // Bounded per client, by count and by the bytes its queued and in-flight messages hold:
    // the newest message is dropped.
    stats_.queue_dropped.add();
    s.trim();
  }
}

void MqttHandler::pump(Session& s) {
  if (s.conn == nullptr || !s.has_queues()) return;
  SessionQueues& q = *s.queues_;
  Connection& c = *s.conn;
  while (q.has_queued() && q.window_has_room(window(s)) &&
         c.pending_output_bytes() <= cfg_.max_queued_bytes && c.open()) {
    OutMessage next = q.pop_queued();
    stats_.queued_messages.sub();
    if (!deliverable(s, next)) {  // expired while it waited [MQTT-3.3.2-5]
      if (store_) store_->message_done(s, next.store_seq, next.store_body);
      continue;
    }
    start_inflight(c, s, std::move(next));
  }
  s.trim();
}

void MqttHandler::resend_inflight(Session& s) {
  std::vector<uint16_t> unsendable;
  for (OutMessage& m : s.queues_->inflight()) {
    if (m.state == OutMessage::State::kWaitPubcomp) {
      if (s.stored)
        send_ack_after_store(*s.conn, s, mqtt::PacketType::kPubrel, m.packet_id);
      else
        send_ack(*s.conn, s, mqtt::PacketType::kPubrel, m.packet_id);
    } else if (!send_publish(*s.conn, s, m, m.sub_ids,
                             PublishSend{.qos = m.qos, .retain = m.retain, .dup = true,
                                         .resend = true, .packet_id = m.packet_id,
                                         .after_store = s.stored && m.qos == QoS::k2})) {
      // Same packet id, DUP set [MQTT-4.4.0-1], [MQTT-3.3.1-1]; refused only when the new
      // connection's Maximum Packet Size is below it [MQTT-3.1.2-25]: then it can never be
      // acknowledged, and would hold a window slot for the rest of the session.
      unsendable.push_back(m.packet_id);
    }
  }
  for (uint16_t id : unsendable) {
    if (const OutMessage* m = s.queues_->find_inflight(id); m != nullptr && store_)
      store_->message_done(s, m->store_seq, m->store_body);
    if (s.queues_->abandon(id)) {
      stats_.inflight_messages.sub();
      stats_.queue_dropped.add();
    }
  }
}

// --- routing ----------------------------------------------------------------------------------

void MqttHandler::route(const Message& m, bool from_remote, const Session* origin,
                        const std::shared_ptr<DeliveryTally>& tally) {
  if (broker_.taps().active()) broker_.taps().offer(m);  // the dashboard's topic viewer
  if (m.retain) {
    broker_.retained().set(m);  // [MQTT-3.3.1-5], [MQTT-3.3.1-10]
    if (store_) store_->retained_set(m);
  }
  // Existing subscribers get RETAIN 0 [MQTT-3.3.1-9] (unless Retain As Published).
  const size_t here = deliver_local(m, origin);
  for (MqttHandler* other : broker_.handlers()) {
    if (other == this || !other->may_match(as_chars(m.topic.view()))) continue;
    // One task per loop, whatever the number of its subscribers.
    bool posted = false;
    if (tally) {
      tally->expect();
      posted = other->loop().post([other, m, origin, tally] { tally->add(other->deliver_local(m, origin)); });
      if (!posted) tally->add(0);
    } else {
      posted = other->loop().post([other, m, origin] { other->deliver_local(m, origin); });
    }
    if (posted) stats_.cross_loop_posts.add();
  }
  if (tally) tally->add(here);  // last: the count cannot complete before every post is made
  if (!from_remote) {
    broker_.router().on_local_publish(m);
    // Shared subscriptions: one member per group, picked where the message entered (a
    // message from another process had its members picked there).
    if (broker_.shared().any()) route_shared(m);
  }
}

uint32_t MqttHandler::route_held(const Message& m, const Session* origin, uint64_t ack_token,
                                 bool from_remote) {
  if (broker_.taps().active()) broker_.taps().offer(m);
  if (m.retain) {
    broker_.retained().set(m);
    store_->retained_set(m);
  }
  deliver_local(m, origin);
  uint32_t asked = 0;
  for (MqttHandler* other : broker_.handlers()) {
    if (other == this || !other->may_match(as_chars(m.topic.view()))) continue;
    // After its delivery, the other loop tells this one the last store op it submitted; the
    // acknowledgement waits for that to be durable too.
    const bool posted = other->loop().post([other, m, origin, self = this, ack_token] {
      other->deliver_local(m, origin);
      const uint64_t seq = other->store_last_seq();
      // If this loop has stopped the answer is dropped, and so is the acknowledgement.
      self->loop().post([self, ack_token, seq] { self->gate_echo(ack_token, seq); });
    });
    if (posted) {
      ++asked;
      stats_.cross_loop_posts.add();
    }
  }
  if (from_remote) return asked;
  // The other processes it goes to answer once their stores have it.
  asked += broker_.router().on_local_publish_held(m, loop_.index(), ack_token);
  // Shared groups: one answer per group, from wherever its member got it (this loop, another
  // loop, another process), or at once where it went nowhere.
  if (broker_.shared().any())
    asked += route_shared(m, DurableWait::for_loop(loop_.index(), ack_token));
  return asked;
}

void MqttHandler::route_for_peer(const Message& m, uint16_t peer, uint64_t request) {
  if (!holds_output()) {  // no store here, or one that does not hold acknowledgements
    route(m, true);
    broker_.router().durable_done(peer, request);
    return;
  }
  const uint64_t token = gate_->hold_for_peer(peer, request, 0, DurableGate::kUnknownEchoes);
  const uint32_t asked = route_held(m, nullptr, token, true);
  gate_->complete(token, store_->last_seq(), asked);
  gate_->release(store_->writer().durable_seq());
  ask_store_for_gate();
}

size_t MqttHandler::deliver_local(const Message& msg, const Session* origin) {
  if (tree_.subscription_count() == 0) return 0;
  if (++epoch_ == 0) epoch_ = 1;
  matches_.clear();
  match_ids_.clear();
  tree_.match(as_chars(msg.topic.view()), [&, this](Session* s, QoS granted, const SubRecord* rec) {
    bool keep_retain = false;
    if (rec != nullptr) {
      // No Local: not back to the publishing client [MQTT-3.8.3-3].
      if ((rec->options & kSubNoLocal) && s == origin) return;
      keep_retain = msg.retain && (rec->options & kSubRetainAsPublished);  // [MQTT-3.3.1-13]
    }
    if (s->match_epoch == epoch_) {
      Match& m = matches_[s->match_index];
      if (static_cast<uint8_t>(granted) > static_cast<uint8_t>(m.qos)) m.qos = granted;
      m.retain = m.retain || keep_retain;
    } else {
      s->match_epoch = epoch_;
      s->match_index = static_cast<uint32_t>(matches_.size());
      matches_.push_back(Match{s, granted, keep_retain});
    }
    // One copy carries the ids of every matching subscription that has one [MQTT-3.3.4-4].
    if (rec != nullptr && rec->subscription_id != 0)
      match_ids_.emplace_back(s->match_index, rec->subscription_id);
  });
  // The sessions of this pass that store the message share one body (session_store.h).
  if (store_) store_->begin_pass();
  if (match_ids_.empty()) {
    for (const Match& m : matches_) deliver(*m.s, msg, min_qos(msg.qos, m.qos), m.retain);
  if (store_) store_->end_pass();
  return matches_.size();
  }
  std::sort(match_ids_.begin(), match_ids_.end());
  size_t k = 0;
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < matches_.size(); ++i) {
    const Match& m = matches_[i];
    ids.clear();
    for (; k < match_ids_.size() && match_ids_[k].first == i; ++k) ids.push_back(match_ids_[k].second);
    deliver(*m.s, msg, min_qos(msg.qos, m.qos), m.retain, subscription_id_props(ids));
  }
  if (store_) store_->end_pass();
  return matches_.size();
}

SharedBytes subscription_id_props(std::span<const uint32_t> ids) {
  if (ids.empty()) return {};
  std::vector<std::byte> out(ids.size() * 5);
  mqtt::PropertyBuilder b(out);
  for (uint32_t id : ids) b.add(PropertyId::kSubscriptionIdentifier, id);
  return SharedBytes::copy_of(ByteView(out.data(), b.size()));
}

}  // namespace tcpms::broker
