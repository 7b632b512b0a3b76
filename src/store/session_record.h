// SessionRecord: what the store keeps of one persistent session besides its subscriptions,
// messages, inbound QoS 2 ids and delayed will (each in records of their own, keyed by the
// client id, so a change to one writes only that one).
//
// Format (inside the record envelope of wire.h), version 1:
//   u8 protocol level (3, 4 or 5) | u32 expiry seconds | u64 offline since (unix ms)
//   | u16 last packet id
//
// Pure functions, no I/O; the decoder refuses what a live session cannot have.
// Thread rules: none.
#pragma once

#include <cstdint>
#include <string>

#include "mqtt/types.h"
#include "store/wire.h"

namespace tcpms::store {

// 3.1.1 sessions (CleanSession 0) last until a clean CONNECT; 5.0 0xFFFFFFFF never expires.
inline constexpr uint32_t kNeverExpires = 0xFFFFFFFFu;

struct SessionRecord {
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  uint32_t expiry_s = kNeverExpires;  // 5.0 Session Expiry Interval (never 0: that is not kept)
  uint64_t offline_since_ms = 0;      // unix ms it lost its connection; 0: it had one
  uint16_t last_packet_id = 0;        // new ids continue after it
  bool operator==(const SessionRecord&) const = default;
};

inline constexpr uint8_t kSessionRecordVersion = 1;

void encode_session_record(const SessionRecord& r, std::string& out);
Decoded<SessionRecord> decode_session_record(ByteView record);

// Whether a session offline since `offline_since_ms` with `expiry_s` has expired at `now_ms`
// (unix ms). A session that had a connection when last written counts as offline since
// `recovered_at_ms` (the server stopped under it).
bool session_expired(const SessionRecord& r, uint64_t now_ms, uint64_t recovered_at_ms) noexcept;

}  // namespace tcpms::store
