#include "store/message_record.h"

#include "mqtt/properties.h"
#include "mqtt/topic.h"

namespace tcpms::store {

bool valid_stored_topic(ByteView topic) noexcept {
  return !topic.empty() && mqtt::validate_topic_name(as_chars(topic)) == mqtt::TopicError::kOk;
}

bool valid_stored_properties(ByteView properties) noexcept {
  mqtt::Bytes rest = properties;
  mqtt::Property p;
  while (!rest.empty()) {
    if (!mqtt::Properties::next(rest, p)) return false;
  }
  return true;
}

void encode_message_body(const MessageBody& b, std::string& out) {
  RecordWriter w(out, kMessageBodyVersion);
  w.str16(b.topic.view());
  w.str32(b.payload.view());
  w.str32(b.properties.view());
  w.u64(b.expires_at_ms);
  w.finish();
}

Decoded<MessageBody> decode_message_body(ByteView record) {
  auto body = open_record(record, kMessageBodyVersion);
  if (!body.ok()) return refused<MessageBody>(body.error);
  Decoded<MessageBody> d;
  Reader in(body.value);
  const ByteView topic = in.str16();
  const ByteView payload = in.str32();
  const ByteView props = in.str32();
  d.value.expires_at_ms = in.u64();
  if (!in.ok()) {
    d.error = "truncated message body";
  } else if (in.remaining() != 0) {
    d.error = "trailing bytes in message body";
  } else if (!valid_stored_topic(topic)) {
    d.error = "invalid topic in message body";
  } else if (!valid_stored_properties(props)) {
    d.error = "invalid properties in message body";
  } else {
    d.value.topic = shared_copy(topic);
    d.value.payload = shared_copy(payload);
    d.value.properties = shared_copy(props);
    return d;
  }
  d.value = {};
  return d;
}

void encode_message_ref(const MessageRef& r, std::string& out) {
  RecordWriter w(out, kMessageRefVersion);
  w.u64(r.body_id);
  w.u8(static_cast<uint8_t>(r.qos));
  w.u8(r.retain ? 1 : 0);
  w.u8(static_cast<uint8_t>(r.state));
  w.u16(r.packet_id);
  w.str32(r.subscription_ids.view());
  w.finish();
}

namespace {

const char* check_ref(uint8_t qos, uint8_t retain, uint8_t state, const MessageRef& r) {
  if (qos != 1 && qos != 2) return "message ref QoS not 1 or 2";
  if (retain > 1) return "bad retain flag in message ref";
  switch (static_cast<DeliveryState>(state)) {
    case DeliveryState::kQueued:
      if (r.packet_id != 0) return "queued message ref with a packet id";
      break;
    case DeliveryState::kWaitPuback:
      if (qos != 1) return "message ref state does not match its QoS";
      break;
    case DeliveryState::kWaitPubrec:
    case DeliveryState::kWaitPubcomp:
      if (qos != 2) return "message ref state does not match its QoS";
      break;
    default:
      return "unknown message ref state";
  }
  const bool in_flight = static_cast<DeliveryState>(state) != DeliveryState::kQueued;
  if (in_flight && r.packet_id == 0) return "in-flight message ref without a packet id";
  const bool needs_body = static_cast<DeliveryState>(state) != DeliveryState::kWaitPubcomp;
  if (needs_body && r.body_id == 0) return "message ref without a body";
  if (!needs_body && r.body_id != 0) return "released message ref still names a body";
  return nullptr;
}

}  // namespace

Decoded<MessageRef> decode_message_ref(ByteView record) {
  auto body = open_record(record, kMessageRefVersion);
  if (!body.ok()) return refused<MessageRef>(body.error);
  Decoded<MessageRef> d;
  Reader in(body.value);
  d.value.body_id = in.u64();
  const uint8_t qos = in.u8(), retain = in.u8(), state = in.u8();
  d.value.packet_id = in.u16();
  const ByteView ids = in.str32();
  if (!in.ok()) {
    d.error = "truncated message ref";
  } else if (in.remaining() != 0) {
    d.error = "trailing bytes in message ref";
  } else if (const char* why = check_ref(qos, retain, state, d.value)) {
    d.error = why;
  } else if (!valid_stored_properties(ids)) {
    d.error = "invalid subscription identifiers in message ref";
  } else {
    d.value.qos = static_cast<mqtt::QoS>(qos);
    d.value.retain = retain != 0;
    d.value.state = static_cast<DeliveryState>(state);
    d.value.subscription_ids = shared_copy(ids);
    return d;
  }
  d.value = {};
  return d;
}

}  // namespace tcpms::store
