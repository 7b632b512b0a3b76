// WillRecord: a 5.0 will waiting for its Will Delay Interval while its session is offline
// [MQTT-3.1.3-9], keyed by the client id. It goes out when `due_ms` passes or the session
// ends, whichever comes first, and is dropped if the client comes back in time. (A will of a
// connected client is not stored: it belongs to a connection, and none survives a restart.)
//
// Format (inside the record envelope of wire.h), version 1:
//   u16 len, topic | u32 len, payload | u8 QoS | u8 retain | u32 len, properties
//   | u32 message expiry seconds | u32 delay seconds | u64 due (unix ms)
//
// Pure functions, no I/O. Thread rules: none.
#pragma once

#include <cstdint>
#include <string>

#include "mqtt/types.h"
#include "store/wire.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::store {

struct WillRecord {
  SharedBytes topic;
  SharedBytes payload;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  SharedBytes properties;
  uint32_t expiry_s = 0;  // Message Expiry Interval, from when it is published; 0: none
  uint32_t delay_s = 0;
  uint64_t due_ms = 0;    // unix ms
};

inline constexpr uint8_t kWillRecordVersion = 1;

void encode_will_record(const WillRecord& r, std::string& out);
Decoded<WillRecord> decode_will_record(ByteView record);

}  // namespace tcpms::store
