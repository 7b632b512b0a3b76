// MqttHandler, what a client publishes: PUBLISH (topic aliases, 5.0 properties, ACL, QoS 2
// ids awaiting PUBREL), the acknowledgements of what we sent, and the per-client publish
// rate.
#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "mqtt/property_builder.h"
#include "mqtt/topic.h"

namespace tcpms::broker {

using mqtt::PacketType;
using mqtt::PropertyId;
using mqtt::QoS;
using mqtt::ReasonCode;

Action MqttHandler::handle_publish(Connection& c, Session& s, const mqtt::FixedHeader& h,
                                   mqtt::Bytes body) {
  auto d = mqtt::decode_publish(h.flags, body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  const mqtt::Publish& p = *d;
  std::string_view topic = p.topic;
  SharedBytes topic_bytes;
  MessageProps props;
  if (s.is_v5() && !p.properties.empty()) {
    if (p.properties.find(PropertyId::kSubscriptionIdentifier))
      return violation(c, "PUBLISH from a client carries a Subscription Identifier [MQTT-3.3.4-6]");
    if (auto alias = p.properties.number(PropertyId::kTopicAlias)) {
      // Inbound aliases, per connection, up to the Topic Alias Maximum we announced.
      if (*alias == 0 || *alias > kTopicAliasMaximum)
        return violation(c, "Topic Alias over our Topic Alias Maximum [MQTT-3.3.2-9]",
                         ReasonCode::kTopicAliasInvalid);
      auto& aliases = s.extra_ref().topic_aliases;
      if (!aliases) aliases = std::make_unique<std::array<SharedBytes, kTopicAliasMaximum>>();
      SharedBytes& slot = (*aliases)[*alias - 1];
      if (topic.empty()) {
        if (slot.empty()) return violation(c, "Topic Alias not defined on this connection");
        topic_bytes = slot;
      } else {
        if (mqtt::validate_topic_name(topic, cfg_.max_topic_levels) != mqtt::TopicError::kOk)
          return violation(c, "topic over --max-topic-levels", ReasonCode::kTopicNameInvalid);
        topic_bytes = SharedBytes::copy_of(as_bytes(topic));
        slot = topic_bytes;  // (re)defines the alias [MQTT-3.3.2-11]
      }
      topic = as_chars(topic_bytes.view());
    }
    props = message_props(p.properties, steady_ms());
  }
  if (mqtt::validate_topic_name(topic, cfg_.max_topic_levels) != mqtt::TopicError::kOk) {
    // 3.1.1 has no negative PUBACK: refusing a publish means closing the connection.
    stats_.refused_publishes.add();
    spdlog::debug("mqtt: client {}: topic over --max-topic-levels; closing", s.client_id());
    if (s.is_v5()) return violation(c, "topic over --max-topic-levels", ReasonCode::kTopicNameInvalid);
    return Action::kClose;
  }
  // Clients may not publish into the broker's own statistics. A refused publish is dropped
  // and counted; 3.1.1 has no negative PUBACK, so there its QoS 1/2 handshakes still complete
  // [MQTT-3.3.5-2]; 5.0 acknowledges with 0x87 Not authorized.
  bool accept = true;
  if (is_sys_topic(topic)) {
    accept = false;
    stats_.sys_publish_denied.add();
  } else {
    switch (authorize(c, s, AclAction::kPublish, topic)) {
      case Decision::kAllow: break;
      case Decision::kDeny:
        accept = false;
        stats_.acl_publish_denied.add();
        break;
      case Decision::kPending:
        return Action::kKeep;  // read again once the answer is in (a topic alias it defined
                               // is defined again, to the same topic)
    }
  }
  stats_.messages_in.add();
  stats_.bytes_payload_in.add(p.payload.size());
  const ReasonCode rc = accept ? ReasonCode::kSuccess : ReasonCode::kNotAuthorized;

  if (p.qos == QoS::k2) {
    SessionQueues& q = s.queues();
    if (q.incoming_seen(p.packet_id)) {
      // A resent PUBLISH whose PUBREL has not come yet: acknowledge, do not deliver twice
      // [MQTT-4.3.3-2].
      send_ack_after_store(c, s, PacketType::kPubrec, p.packet_id);
      return Action::kKeep;
    }
    if (accept || !s.is_v5()) {  // a 5.0 PUBREC >= 0x80 ends the exchange: no PUBREL comes
      if (s.is_v5() && q.incoming_count() >= server_receive_maximum())
        return violation(c, "more QoS 2 publishes unreleased than our Receive Maximum",
                         ReasonCode::kReceiveMaximumExceeded);  // 5.0 §3.3.4
      q.incoming_add(p.packet_id);
      if (store_) store_->inbound_added(s, p.packet_id);
    }
    s.trim();
  }
  // PUBACK [MQTT-4.3.2-2] / PUBREC [MQTT-4.3.3-2]; under every-message sync only once the
  // message is durable for every stored session it reached, here, on the other loops and in
  // the other worker processes.
  const PacketType ack = p.qos == QoS::k1 ? PacketType::kPuback : PacketType::kPubrec;
  uint64_t token = 0;
  if (p.qos != QoS::k0 && holds_output()) {
    mqtt::PublishResponse r;
    r.type = ack;
    r.packet_id = p.packet_id;
    r.reason = rc;
    size_t n = mqtt::encoded_size(r, s.version);
    scratch_.resize(std::max(scratch_.size(), n));
    n = mqtt::encode(r, s.version, mqtt::OutBytes(scratch_.data(), n));
    token = gate_->hold(c.id(), ByteView(scratch_.data(), n), {}, 0, DurableGate::kUnknownEchoes);
    stats_.packets_out[static_cast<uint8_t>(ack)].add();
  }
  uint32_t asked = 0;
  if (accept) {
    if (topic_bytes.empty()) topic_bytes = SharedBytes::copy_of(as_bytes(topic));
    Message m{std::move(topic_bytes), SharedBytes::copy_of(p.payload), std::move(props), p.qos,
              p.retain};
    if (token != 0)
      asked = route_held(m, &s, token);
    else
      route(m, false, &s);
  }
  if (token != 0) {
    gate_->complete(token, store_->last_seq(), asked);
    gate_->release(store_->writer().durable_seq());
    ask_store_for_gate();
  } else if (p.qos != QoS::k0) {
    send_ack(c, s, ack, p.packet_id, rc);
  }
  return Action::kKeep;
}

Action MqttHandler::handle_ack(Connection& c, Session& s, PacketType type, mqtt::Bytes body) {
  auto d = mqtt::decode_publish_response(type, body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  const uint16_t id = d->packet_id;
  if (type != PacketType::kPubrel && s.has_queues() && s.queues_->wrong_ack(type, id)) {
    // PUBCOMP or PUBREC for a QoS 1 message, PUBACK for a QoS 2 one, PUBCOMP before our PUBREL:
    // not a late duplicate (those name ids no longer in flight) but a broken handshake.
    return violation(c, "acknowledgement of the wrong type for an in-flight message [MQTT-4.8.0-1]");
  }
  // The store ids of the in-flight message this ack is for, taken before the window lets go.
  uint64_t store_seq = 0, store_body = 0;
  if (const OutMessage* m = s.has_queues() ? s.queues_->find_inflight(id) : nullptr) {
    store_seq = m->store_seq;
    store_body = m->store_body;
  }
  switch (type) {
    case PacketType::kPuback:
      if (s.has_queues() && s.queues_->on_puback(id)) {
        stats_.inflight_messages.sub();
        if (store_) store_->message_done(s, store_seq, store_body);
        pump(s);
      }
      break;
    case PacketType::kPubrec:
      if (s.has_queues() && s.queues_->on_pubrec(id)) {
        if (mqtt::to_byte(d->reason) >= 0x80) {
          // 5.0: a failed PUBREC ends the exchange; no PUBREL (4.3.3).
          s.queues_->on_pubcomp(id);
          stats_.inflight_messages.sub();
          if (store_) store_->message_done(s, store_seq, store_body);
          pump(s);
          break;
        }
        if (store_) store_->message_released(s, *s.queues_->find_inflight(id));
        send_ack_after_store(c, s, PacketType::kPubrel, id);  // [MQTT-4.3.3-1]
      } else if (s.is_v5() && mqtt::to_byte(d->reason) < 0x80) {
        send_ack(c, s, PacketType::kPubrel, id, ReasonCode::kPacketIdentifierNotFound);
      }
      break;
    case PacketType::kPubrel: {
      const bool known = s.has_queues() && s.queues_->incoming_release(id);
      if (known && store_) store_->inbound_released(s, id);
      // PUBCOMP even for an id we do not know: the sender only needs to stop resending
      // (5.0 says so with 0x92).
      send_ack_after_store(c, s, PacketType::kPubcomp, id,
                           known ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound);
      s.trim();
      break;
    }
    case PacketType::kPubcomp:
      if (s.has_queues() && s.queues_->on_pubcomp(id)) {
        stats_.inflight_messages.sub();
        if (store_) store_->message_done(s, store_seq, store_body);
        pump(s);
      }
      break;
    default:
      break;
  }
  return Action::kKeep;
}

MessageProps MqttHandler::message_props(mqtt::Properties in, uint64_t now_ms) {
  MessageProps out;
  props_scratch_.resize(in.wire_size());
  mqtt::PropertyBuilder b(props_scratch_);
  for (const mqtt::Property& pr : in) {
    switch (pr.id) {
      case PropertyId::kMessageExpiryInterval:
        // 0 is taken as "no expiry", as Mosquitto does.
        if (pr.number != 0) out.expires_at_ms = now_ms + uint64_t{pr.number} * 1000;
        break;
      case PropertyId::kTopicAlias:              // per connection
      case PropertyId::kSubscriptionIdentifier:  // per subscription
      case PropertyId::kWillDelayInterval:       // the server's business
        break;
      default:
        b.add(pr);  // forwarded unaltered [MQTT-3.3.2-18], [MQTT-3.3.2-20], ...
    }
  }
  if (b.ok() && b.size() != 0)
    out.wire = SharedBytes::copy_of(ByteView(props_scratch_.data(), b.size()));
  return out;
}

bool MqttHandler::admit_publish(Connection& c, Session& s, size_t bytes) {
  using Clock = auth::TokenBucket::Clock;
  const auth::TokenBucketLimits msgs{cfg_.client_messages_per_s, cfg_.client_message_burst};
  const auth::TokenBucketLimits data{cfg_.client_bytes_per_s, cfg_.client_bytes_burst};
  const bool msgs_on = msgs.rate_per_s > 0, data_on = data.rate_per_s > 0;
  const auto now = Clock::now();
  SessionExtra& x = s.extra_ref();
  if (!x.rate) {
    x.rate = std::make_unique<ClientRate>(
        ClientRate{auth::TokenBucket(msgs.burst, now), auth::TokenBucket(data.burst, now)});
  }
  ClientRate& r = *x.rate;
  // A packet larger than the byte burst costs the whole burst (it could never pass otherwise).
  const double cost = std::min(static_cast<double>(bytes), data.burst);
  if (!msgs_on || r.messages.try_take(msgs, 1, now)) {
    if (!data_on || r.bytes.try_take(data, cost, now)) return true;
    if (msgs_on) r.messages.give_back(msgs, 1, now);
  }
  Clock::duration wait = Clock::duration::zero();
  if (msgs_on) wait = std::max(wait, r.messages.wait_for(msgs, 1, now));
  if (data_on) wait = std::max(wait, r.bytes.wait_for(data, cost, now));
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(
                std::min<Clock::duration>(wait, std::chrono::seconds(1)))
                .count();
  // Over its rate: stop reading (TCP pushes back on the client) and look again once its
  // bucket has refilled. Nothing is dropped.
  stats_.rate_limit_pauses.add();
  c.pause_reading();
  resume_reading_after(c, static_cast<uint32_t>(std::max<int64_t>(ms, 1)));
  return false;
}

bool MqttHandler::links_admit_publish(Connection& c) {
  if (!broker_.router().links_backed_up()) return true;
  // What this PUBLISH would send other nodes could not leave yet: the client waits (its
  // TCP window fills) instead of the link dropping the frames. Looked at again every few
  // milliseconds; the queue drains at Redis's pace, thousands of frames a second.
  stats_.link_waits.add();
  c.pause_reading();
  resume_reading_after(c, kLinkWaitMs);
  return false;
}

void MqttHandler::resume_reading_after(Connection& c, uint32_t ms) {
  loop_.run_after(ms, [this, id = c.id()] {
    Connection* cc = loop_.find(id);
    if (cc != nullptr && cc->user_data() != nullptr &&
        kind_of(cc->user_data()) == ConnStateKind::kSession)
      after_async(*cc, Action::kKeep);
  });
}

Decision MqttHandler::authorize(Connection& c, Session& s, AclAction action,
                               std::string_view topic) {
  Decision d = broker_.authorizer().decide(
      {s.client_id(), s.username(), &c}, action, topic, loop_, pos_,
      [this, id = c.id()] {
        if (Connection* cc = loop_.find(id)) cc->resume_reading();
      });
  if (d == Decision::kPending) {
    c.pause_reading();
    replay_packet_ = true;
    stats_.authorization_waits.add();
  }
  return d;
}

}  // namespace tcpms::broker
