#include "store/subscription_record.h"

#include "mqtt/topic.h"

namespace tcpms::store {

void encode_subscription_record(const SubscriptionRecord& r, std::string& out) {
  RecordWriter w(out, kSubscriptionRecordVersion);
  w.u8(static_cast<uint8_t>(r.qos));
  w.u8(r.options);
  w.u32(r.subscription_id);
  w.finish();
}

Decoded<SubscriptionRecord> decode_subscription_record(ByteView record) {
  auto body = open_record(record, kSubscriptionRecordVersion);
  if (!body.ok()) return refused<SubscriptionRecord>(body.error);
  Decoded<SubscriptionRecord> d;
  Reader in(body.value);
  const uint8_t qos = in.u8();
  d.value.options = in.u8();
  d.value.subscription_id = in.u32();
  if (!in.ok()) {
    d.error = "truncated subscription record";
  } else if (in.remaining() != 0) {
    d.error = "trailing bytes in subscription record";
  } else if (qos > 2) {
    d.error = "subscription QoS over 2";
  } else if (d.value.options > 3) {
    d.error = "unknown subscription options";
  } else if (d.value.subscription_id > kMaxSubscriptionId) {
    d.error = "subscription identifier over 268,435,455";
  } else {
    d.value.qos = static_cast<mqtt::QoS>(qos);
    return d;
  }
  d.value = {};
  return d;
}

bool valid_stored_filter(std::string_view filter) noexcept {
  return !filter.empty() && mqtt::validate_topic_filter(filter) == mqtt::TopicError::kOk;
}

bool valid_stored_subscription(std::string_view filter, const SubscriptionRecord& r) noexcept {
  // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4]: no session has one.
  return valid_stored_filter(filter) &&
         !(mqtt::is_shared_subscription(filter) && (r.options & kSubscriptionNoLocal));
}

}  // namespace tcpms::store
