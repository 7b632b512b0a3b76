#include "store/session_record.h"

namespace tcpms::store {

void encode_session_record(const SessionRecord& r, std::string& out) {
  RecordWriter w(out, kSessionRecordVersion);
  w.u8(static_cast<uint8_t>(r.version));
  w.u32(r.expiry_s);
  w.u64(r.offline_since_ms);
  w.u16(r.last_packet_id);
  w.finish();
}

Decoded<SessionRecord> decode_session_record(ByteView record) {
  auto body = open_record(record, kSessionRecordVersion);
  if (!body.ok()) return refused<SessionRecord>(body.error);
  Decoded<SessionRecord> d;
  Reader in(body.value);
  const uint8_t level = in.u8();
  d.value.expiry_s = in.u32();
  d.value.offline_since_ms = in.u64();
  d.value.last_packet_id = in.u16();
  if (!in.ok()) {
    d.error = "truncated session record";
  } else if (in.remaining() != 0) {
    d.error = "trailing bytes in session record";
  } else if (level < 3 || level > 5) {
    d.error = "session record protocol level is not 3, 4 or 5";
  } else if (d.value.expiry_s == 0) {
    d.error = "session record with expiry 0 (such a session is never stored)";
  } else {
    d.value.version = static_cast<mqtt::ProtocolVersion>(level);
    return d;
  }
  d.value = {};
  return d;
}

bool session_expired(const SessionRecord& r, uint64_t now_ms, uint64_t recovered_at_ms) noexcept {
  if (r.expiry_s == kNeverExpires) return false;
  const uint64_t since = r.offline_since_ms != 0 ? r.offline_since_ms : recovered_at_ms;
  return now_ms >= since + uint64_t{r.expiry_s} * 1000;
}

}  // namespace tcpms::store
