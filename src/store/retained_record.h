// RetainedRecord: the retained message of one topic (3.1.1 §3.3.1.3), keyed by the topic.
// An empty payload clears a topic, so a stored record always has one.
//
// Format (inside the record envelope of wire.h), version 1:
//   u8 QoS | u32 len, payload | u32 len, properties | u64 expires at (unix ms; 0: never)
//
// Pure functions, no I/O. Thread rules: none.
#pragma once

#include <cstdint>
#include <string>

#include "mqtt/types.h"
#include "store/wire.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::store {

struct RetainedRecord {
  mqtt::QoS qos = mqtt::QoS::k0;
  SharedBytes payload;
  SharedBytes properties;
  uint64_t expires_at_ms = 0;
};

inline constexpr uint8_t kRetainedRecordVersion = 1;

void encode_retained_record(const RetainedRecord& r, std::string& out);
Decoded<RetainedRecord> decode_retained_record(ByteView record);

}  // namespace tcpms::store
