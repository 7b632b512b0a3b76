#include "broker/session_store.h"

#include <algorithm>
#include <chrono>

namespace tcpms::broker {

namespace {

uint64_t unix_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

static_assert(static_cast<uint8_t>(OutMessage::State::kQueued) ==
              static_cast<uint8_t>(store::DeliveryState::kQueued));
static_assert(static_cast<uint8_t>(OutMessage::State::kWaitPuback) ==
              static_cast<uint8_t>(store::DeliveryState::kWaitPuback));
static_assert(static_cast<uint8_t>(OutMessage::State::kWaitPubrec) ==
              static_cast<uint8_t>(store::DeliveryState::kWaitPubrec));
static_assert(static_cast<uint8_t>(OutMessage::State::kWaitPubcomp) ==
              static_cast<uint8_t>(store::DeliveryState::kWaitPubcomp));

}  // namespace

uint64_t SessionStore::to_unix_ms(uint64_t steady) {
  if (steady == 0) return 0;
  const uint64_t now_steady = steady_ms(), now_unix = unix_now_ms();
  return steady >= now_steady ? now_unix + (steady - now_steady)
                              : now_unix - std::min(now_unix - 1, now_steady - steady);
}

uint64_t SessionStore::to_steady_ms(uint64_t unix_value) {
  if (unix_value == 0) return 0;
  const uint64_t now_steady = steady_ms(), now_unix = unix_now_ms();
  // A deadline already past maps to "now" (at least 1: 0 means none).
  return unix_value >= now_unix ? now_steady + (unix_value - now_unix) : std::max<uint64_t>(now_steady, 1);
}

void SessionStore::save_session(Session& s) {
  store::SessionRecord r;
  r.version = s.version;
  r.expiry_s = s.is_v5() && s.extra ? s.extra->session_expiry_s : store::kNeverExpires;
  if (r.expiry_s == 0) r.expiry_s = store::kNeverExpires;  // cannot happen for a stored session
  r.offline_since_ms = 0;
  if (s.conn == nullptr) {
    // Offline since its expiry started to count (a session that came from another process
    // keeps its clock), else since now.
    const uint64_t expires = s.is_v5() && s.extra ? s.extra->expires_at_ms : 0;
    const uint64_t counted_ms = uint64_t{r.expiry_s} * 1000;
    r.offline_since_ms = unix_now_ms();
    if (expires != 0 && r.expiry_s != store::kNeverExpires && to_unix_ms(expires) > counted_ms)
      r.offline_since_ms = std::min(r.offline_since_ms, to_unix_ms(expires) - counted_ms);
  }
  r.last_packet_id = s.has_queues() ? s.queues_->last_packet_id() : 0;
  s.stored = true;
  submit(store::PutSession{std::string(s.client_id()), r});
}

void SessionStore::drop_session(Session& s) {
  if (!s.stored) return;
  s.stored = false;
  submit(store::DropSession{std::string(s.client_id())});
}

void SessionStore::put_subscription(Session& s, std::string_view filter, mqtt::QoS qos,
                                    uint8_t options, uint32_t subscription_id) {
  if (!s.stored) return;
  submit(store::PutSubscription{std::string(s.client_id()), std::string(filter),
                                store::SubscriptionRecord{qos, options, subscription_id}});
}

void SessionStore::delete_subscription(Session& s, std::string_view filter) {
  if (!s.stored) return;
  submit(store::DeleteSubscription{std::string(s.client_id()), std::string(filter)});
}

void SessionStore::end_pass() noexcept {
  in_pass_ = false;
  body_id_ = 0;
  body_payload_ = SharedBytes();
  body_topic_ = SharedBytes();
}

uint64_t SessionStore::body_for(const Message& m) {
  if (in_pass_ && body_id_ != 0 && body_payload_.view().data() == m.payload.view().data() &&
      body_payload_.size() == m.payload.size() && body_topic_.view().data() == m.topic.view().data())
    return body_id_;
  body_id_ = w_.next_id();
  body_payload_ = m.payload;
  body_topic_ = m.topic;
  submit(store::PutBody{body_id_, store::MessageBody{m.topic, m.payload, m.props.wire,
                                                     to_unix_ms(m.props.expires_at_ms)}});
  return body_id_;
}

store::MessageRef SessionStore::ref_of(const OutMessage& m) const {
  return store::MessageRef{m.store_body, m.qos, m.retain,
                           static_cast<store::DeliveryState>(m.state), m.packet_id, m.sub_ids};
}

void SessionStore::message_queued(Session& s, OutMessage& m) {
  if (!s.stored || m.qos == mqtt::QoS::k0) return;
  if (m.store_seq != 0) {  // came back from the window (not done today), or already stored
    submit(store::PutMessage{std::string(s.client_id()), m.store_seq, ref_of(m), false, 0});
    return;
  }
  m.store_body = body_for(m);
  m.store_seq = w_.next_id();
  submit(store::PutMessage{std::string(s.client_id()), m.store_seq, ref_of(m), true, 0});
}

void SessionStore::message_started(Session& s, OutMessage& m) {
  if (!s.stored || m.qos == mqtt::QoS::k0) return;
  if (m.store_seq != 0) {
    submit(store::PutMessage{std::string(s.client_id()), m.store_seq, ref_of(m), false, 0});
    return;
  }
  // A QoS 2 message past its PUBREC (from another process) is only its packet id.
  m.store_body = m.state == OutMessage::State::kWaitPubcomp ? 0 : body_for(m);
  m.store_seq = w_.next_id();
  submit(store::PutMessage{std::string(s.client_id()), m.store_seq, ref_of(m), true, 0});
}

void SessionStore::message_released(Session& s, OutMessage& m) {
  if (!s.stored || m.store_seq == 0) return;
  const uint64_t released = m.store_body;
  m.store_body = 0;
  submit(store::PutMessage{std::string(s.client_id()), m.store_seq, ref_of(m), false, released});
}

void SessionStore::message_done(Session& s, uint64_t store_seq, uint64_t store_body) {
  if (!s.stored || store_seq == 0) return;
  submit(store::DeleteMessage{std::string(s.client_id()), store_seq, store_body});
}

void SessionStore::message_gone(std::string_view client_id, uint64_t store_seq,
                                uint64_t store_body) {
  if (store_seq == 0) return;
  submit(store::DeleteMessage{std::string(client_id), store_seq, store_body});
}

void SessionStore::inbound_added(Session& s, uint16_t packet_id) {
  if (!s.stored) return;
  submit(store::PutInbound{std::string(s.client_id()), packet_id});
}

void SessionStore::inbound_released(Session& s, uint16_t packet_id) {
  if (!s.stored) return;
  submit(store::DeleteInbound{std::string(s.client_id()), packet_id});
}

void SessionStore::will_saved(Session& s, const Will& will, uint64_t due_steady_ms) {
  if (!s.stored) return;
  submit(store::PutWill{std::string(s.client_id()),
                        store::WillRecord{will.topic, will.payload, will.qos, will.retain,
                                          will.props, will.expiry_s, will.delay_s,
                                          to_unix_ms(due_steady_ms)}});
}

void SessionStore::will_deleted(Session& s) {
  if (!s.stored) return;
  submit(store::DeleteWill{std::string(s.client_id())});
}

void SessionStore::retained_set(const Message& m) {
  const std::string_view topic = as_chars(m.topic.view());
  // $SYS/ values are published again every interval: nothing to keep.
  if (topic.starts_with("$SYS")) return;
  if (m.payload.empty()) {
    submit(store::DeleteRetained{std::string(topic)});
    return;
  }
  submit(store::PutRetained{std::string(topic),
                            store::RetainedRecord{m.qos, m.payload, m.props.wire,
                                                  to_unix_ms(m.props.expires_at_ms)}});
}

}  // namespace tcpms::broker
