#include "store/will_record.h"

#include "store/message_record.h"

namespace tcpms::store {

void encode_will_record(const WillRecord& r, std::string& out) {
  RecordWriter w(out, kWillRecordVersion);
  w.str16(r.topic.view());
  w.str32(r.payload.view());
  w.u8(static_cast<uint8_t>(r.qos));
  w.u8(r.retain ? 1 : 0);
  w.str32(r.properties.view());
  w.u32(r.expiry_s);
  w.u32(r.delay_s);
  w.u64(r.due_ms);
  w.finish();
}

Decoded<WillRecord> decode_will_record(ByteView record) {
  auto body = open_record(record, kWillRecordVersion);
  if (!body.ok()) return refused<WillRecord>(body.error);
  Decoded<WillRecord> d;
  Reader in(body.value);
  const ByteView topic = in.str16();
  const ByteView payload = in.str32();
  const uint8_t qos = in.u8(), retain = in.u8();
  const ByteView props = in.str32();
  d.value.expiry_s = in.u32();
  d.value.delay_s = in.u32();
  d.value.due_ms = in.u64();
  if (!in.ok()) {
    d.error = "truncated will record";
  } else if (in.remaining() != 0) {
    d.error = "trailing bytes in will record";
  } else if (!valid_stored_topic(topic)) {
    d.error = "invalid will topic";
  } else if (qos > 2) {
    d.error = "will QoS over 2";
  } else if (retain > 1) {
    d.error = "bad retain flag in will record";
  } else if (!valid_stored_properties(props)) {
    d.error = "invalid will properties";
  } else {
    d.value.topic = shared_copy(topic);
    d.value.payload = shared_copy(payload);
    d.value.qos = static_cast<mqtt::QoS>(qos);
    d.value.retain = retain != 0;
    d.value.properties = shared_copy(props);
    return d;
  }
  d.value = {};
  return d;
}

}  // namespace tcpms::store
