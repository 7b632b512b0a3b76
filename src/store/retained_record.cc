#include "store/retained_record.h"

#include "store/message_record.h"

namespace tcpms::store {

void encode_retained_record(const RetainedRecord& r, std::string& out) {
  RecordWriter w(out, kRetainedRecordVersion);
  w.u8(static_cast<uint8_t>(r.qos));
  w.str32(r.payload.view());
  w.str32(r.properties.view());
  w.u64(r.expires_at_ms);
  w.finish();
}

Decoded<RetainedRecord> decode_retained_record(ByteView record) {
  auto body = open_record(record, kRetainedRecordVersion);
  if (!body.ok()) return refused<RetainedRecord>(body.error);
  Decoded<RetainedRecord> d;
  Reader in(body.value);
  const uint8_t qos = in.u8();
  const ByteView payload = in.str32();
  const ByteView props = in.str32();
  d.value.expires_at_ms = in.u64();
  if (!in.ok()) {
    d.error = "truncated retained record";
  } else if (in.remaining() != 0) {
    d.error = "trailing bytes in retained record";
  } else if (qos > 2) {
    d.error = "retained QoS over 2";
  } else if (payload.empty()) {
    d.error = "retained record without a payload";
  } else if (!valid_stored_properties(props)) {
    d.error = "invalid properties in retained record";
  } else {
    d.value.qos = static_cast<mqtt::QoS>(qos);
    d.value.payload = shared_copy(payload);
    d.value.properties = shared_copy(props);
    return d;
  }
  d.value = {};
  return d;
}

}  // namespace tcpms::store
