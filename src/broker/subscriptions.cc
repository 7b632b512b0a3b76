// MqttHandler, subscriptions: SUBSCRIBE (5.0 options and identifiers, retained messages on
// subscribe), UNSUBSCRIBE, and the loop's topic tree with the router's filter events.
#include "broker/mqtt_handler.h"
#include "mqtt/topic.h"

namespace tcpms::broker {

using mqtt::PacketType;
using mqtt::PropertyId;
using mqtt::QoS;
using mqtt::ReasonCode;

Action MqttHandler::handle_subscribe(Connection& c, Session& s, mqtt::Bytes body) {
  auto d = mqtt::decode_subscribe(body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  // 5.0 Subscription Identifier: kept with each subscription this SUBSCRIBE makes or
  // replaces, sent back in matching PUBLISH (5.0 §3.8.2.1.2, §3.3.4).
  const uint32_t sub_id =
      s.is_v5() ? d->properties.number(PropertyId::kSubscriptionIdentifier).value_or(0) : 0;
  const SharedBytes sub_id_props =
      sub_id != 0 ? subscription_id_props(std::span(&sub_id, 1)) : SharedBytes();
  // Every filter's authorization first: if one is being fetched, the SUBSCRIBE is read again
  // once it is in, and nothing of it has been applied yet.
  std::vector<Decision> decisions;
  bool pending = false;
  for (const mqtt::Subscription& sub : d->subscriptions) {
    const std::string_view filter = sub.filter;
    Decision dec = Decision::kDeny;  // not asked: refused for another reason below
    if (mqtt::validate_topic_filter(filter, cfg_.max_topic_levels) == mqtt::TopicError::kOk) {
      // The ACL sees the filter the messages come through, without "$share/{group}/".
      const auto shared = mqtt::parse_shared_subscription(filter);
      dec = authorize(c, s, AclAction::kSubscribe, shared ? shared->filter : filter);
      replay_packet_ = false;  // set again below, once for the packet
    }
    pending = pending || dec == Decision::kPending;
    decisions.push_back(dec);
  }
  if (pending) {
    replay_packet_ = true;
    return Action::kKeep;
  }
  SubackReply reply;
  reply.packet_id = d->packet_id;  // [MQTT-3.8.4-2]
  reply.sub_id_props = sub_id_props;
  // 5.0 reason codes throughout; the 3.1.1 encoder turns every failure into 0x80.
  std::vector<std::byte>& codes = reply.codes;
  std::vector<RetainedMessage>& retained = reply.retained;
  retained.swap(retained_scratch_);
  retained.clear();
  bool filter_added = false;
  size_t index = 0;
  for (const mqtt::Subscription& sub : d->subscriptions) {
    const Decision decision = decisions[index++];
    const std::string_view filter = sub.filter;
    QoS qos = min_qos(sub.options.max_qos, QoS::k2);
    if (mqtt::validate_topic_filter(filter, cfg_.max_topic_levels) != mqtt::TopicError::kOk) {
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kTopicFilterInvalid)});  // [MQTT-3.8.4-5]
      continue;
    }
    const auto shared = mqtt::parse_shared_subscription(filter);
    // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
    if (shared && s.is_v5() && sub.options.no_local)
      return violation(c, "No Local on a shared subscription [MQTT-3.8.3-4]");
    if (decision != Decision::kAllow) {
      stats_.acl_subscribe_denied.add();
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kNotAuthorized)});
      continue;
    }
    if (cfg_.max_subscriptions_per_client != 0 &&
        subscription_total(s) >= cfg_.max_subscriptions_per_client && !subscribed_to(s, filter)) {
      stats_.subscriptions_over_limit.add();
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kQuotaExceeded)});
      continue;
    }
    if (shared) {
      // One member of the group gets each message; no retained messages on subscribe
      // (5.0 §4.8.2).
      const uint8_t options = s.is_v5() && sub.options.retain_as_published ? kSubRetainAsPublished : 0;
      add_shared(s, shared->share_name, shared->filter, qos, options, sub_id);
      // Kept under its whole filter, so a restart puts the session back in its group.
      if (store_) store_->put_subscription(s, filter, qos, options, sub_id);
      codes.push_back(static_cast<std::byte>(qos));
      continue;
    }
    uint8_t options = 0;
    if (s.is_v5()) {
      if (sub.options.no_local) options |= kSubNoLocal;
      if (sub.options.retain_as_published) options |= kSubRetainAsPublished;
    }
    bool replaced = false;
    add_subscription(s, filter, qos, &replaced, options, sub_id);
    filter_added = filter_added || !replaced;
    if (store_) store_->put_subscription(s, filter, qos, options, sub_id);
    codes.push_back(static_cast<std::byte>(qos));
    // Retained messages matching the filter go out after the SUBACK [MQTT-3.3.1-6]; on a
    // replaced subscription too [MQTT-3.8.4-3], unless 5.0 Retain Handling says otherwise:
    // 1 only for a new subscription [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
    const auto rh = sub.options.retain_handling;
    if (rh == mqtt::RetainHandling::kDoNotSend ||
        (rh == mqtt::RetainHandling::kSendIfNew && replaced))
      continue;
    size_t before = retained.size();
    broker_.retained().match(filter, retained);
    if (retained.size() > before) reply.granted.push_back({before, retained.size() - before, qos});
  }
  update_subscription_count();
  if (filter_added && cfg_.suback_waits_for_peers && broker_.router().wants_filter_events()) {
    auto held = std::make_shared<SubackReply>(std::move(reply));
    const bool waiting = broker_.router().when_filters_known([this, id = c.id(), held] {
      // A failed post (loop stopping) drops the SUBACK with the connection.
      loop_.post([this, id, held] { send_held_suback(id, *held); });
    });
    if (waiting) {
      c.pause_reading();
      stop_after_packet_ = true;
      return Action::kKeep;
    }
    reply = std::move(*held);
  }
  send_suback(c, s, reply);
  reply.retained.clear();
  retained_scratch_.swap(reply.retained);
  return Action::kKeep;
}

void MqttHandler::send_suback(Connection& c, Session& s, SubackReply& r) {
  mqtt::Suback ack;
  ack.packet_id = r.packet_id;
  ack.reason_codes = mqtt::Bytes(r.codes.data(), r.codes.size());
  send_packet(c, ack, s.version, PacketType::kSuback);
  for (const SubackReply::Granted& g : r.granted) {
    for (size_t i = g.first; i < g.first + g.count; ++i) {
      const RetainedMessage& m = r.retained[i];
      // RETAIN 1 [MQTT-3.3.1-8]; with this subscription's identifier.
      deliver(s, m, min_qos(m.qos, g.qos), true, r.sub_id_props);
    }
  }
}

void MqttHandler::send_held_suback(ConnId id, SubackReply& r) {
  Connection* c = loop_.find(id);
  // Closed meanwhile (or taken over): nobody to answer.
  if (c == nullptr || c->user_data() == nullptr || kind_of(c->user_data()) != ConnStateKind::kSession)
    return;
  send_suback(*c, *static_cast<Session*>(c->user_data()), r);
  c->resume_reading();
}

bool MqttHandler::subscribed_to(Session& s, std::string_view filter) const {
  if (const auto shared = mqtt::parse_shared_subscription(filter)) {
    if (s.extra && s.extra->shared)
      for (const SharedSub& e : *s.extra->shared)
        if (e.share == shared->share_name && e.filter == shared->filter) return true;
    return false;
  }
  for (const SubRecord& r : s.subs)
    if (tree_.filter_of(r.node) == filter) return true;
  return false;
}

uint32_t MqttHandler::subscription_total(const Session& s) const noexcept {
  return s.subs.size() + (s.extra && s.extra->shared ? static_cast<uint32_t>(s.extra->shared->size()) : 0);
}

Action MqttHandler::handle_unsubscribe(Connection& c, Session& s, mqtt::Bytes body) {
  auto d = mqtt::decode_unsubscribe(body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  std::vector<std::byte> codes;  // 5.0 only: one per filter
  for (std::string_view filter : d->filters) {
    bool last = false;
    if (const auto shared = mqtt::parse_shared_subscription(filter)) {
      const bool was = remove_shared(s, shared->share_name, shared->filter);
      if (was && store_) store_->delete_subscription(s, filter);
      if (s.is_v5())
        codes.push_back(was ? std::byte{0x00}
                            : std::byte{mqtt::to_byte(ReasonCode::kNoSubscriptionExisted)});
      continue;
    }
    if (tree_.unsubscribe(filter, &s, &last)) {
      stats_.subscriptions.sub();
      if (store_) store_->delete_subscription(s, filter);
      if (last && broker_.router().wants_filter_events())
        broker_.router().on_filter_removed(filter, pos_);
      if (s.is_v5()) codes.push_back(std::byte{0x00});
    } else if (s.is_v5()) {
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kNoSubscriptionExisted)});
    }
  }
  update_subscription_count();
  mqtt::Unsuback ack;
  ack.packet_id = d->packet_id;
  ack.reason_codes = mqtt::Bytes(codes.data(), codes.size());
  // UNSUBACK even when nothing matched [MQTT-3.10.4-4], [MQTT-3.10.4-5].
  send_packet(c, ack, s.version, PacketType::kUnsuback);
  return Action::kKeep;
}

void MqttHandler::remove_subscriptions(Session& s) {
  const bool events = broker_.router().wants_filter_events();
  const uint32_t n = s.subs.size();
  tree_.remove_all(&s, [&](std::string_view filter) {
    if (events) broker_.router().on_filter_removed(filter, pos_);
  });
  stats_.subscriptions.sub(n);
  update_subscription_count();
}

void MqttHandler::add_subscription(Session& s, std::string_view filter, QoS qos, bool* replaced,
                                   uint8_t options, uint32_t subscription_id) {
  auto r = tree_.subscribe(filter, &s, qos, options, subscription_id);
  if (replaced) *replaced = r.replaced;
  if (!r.replaced) stats_.subscriptions.add();
  if (r.first_at_node && broker_.router().wants_filter_events())
    broker_.router().on_filter_added(filter, pos_);
}

void MqttHandler::walk_filters(const std::function<void(std::string_view)>& on_filter) {
  tree_.for_each_filter(on_filter);
}

void MqttHandler::update_subscription_count() {
  subscription_count_.store(tree_.subscription_count(), std::memory_order_relaxed);
}

}  // namespace tcpms::broker
