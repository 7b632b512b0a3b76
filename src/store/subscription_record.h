// SubscriptionRecord: one subscription of a persistent session, keyed by (client id, filter);
// a shared subscription is keyed by its whole filter, "$share/{group}/{filter}".
// The filter is the key, so the record holds only what MQTT attaches to it: the granted QoS,
// the 5.0 options kept for delivery (No Local, Retain As Published) and the Subscription
// Identifier. Retain Handling matters only at SUBSCRIBE time and is not kept.
//
// Format (inside the record envelope of wire.h), version 1:
//   u8 QoS | u8 options (bit 0 No Local, bit 1 Retain As Published) | u32 subscription id
//
// Pure functions, no I/O. Thread rules: none.
#pragma once

#include <cstdint>
#include <string>

#include "mqtt/types.h"
#include "store/wire.h"

namespace tcpms::store {

inline constexpr uint8_t kSubscriptionNoLocal = 1;
inline constexpr uint8_t kSubscriptionRetainAsPublished = 2;
inline constexpr uint32_t kMaxSubscriptionId = 268'435'455;  // a Variable Byte Integer

struct SubscriptionRecord {
  mqtt::QoS qos = mqtt::QoS::k0;
  uint8_t options = 0;
  uint32_t subscription_id = 0;  // 0: none
  bool operator==(const SubscriptionRecord&) const = default;
};

inline constexpr uint8_t kSubscriptionRecordVersion = 1;

void encode_subscription_record(const SubscriptionRecord& r, std::string& out);
Decoded<SubscriptionRecord> decode_subscription_record(ByteView record);
// The key half a subscription record does not hold: a valid MQTT topic filter, a shared one
// ("$share/{group}/{filter}") included.
bool valid_stored_filter(std::string_view filter) noexcept;
// The filter and the record together: a subscription a live session can have.
bool valid_stored_subscription(std::string_view filter, const SubscriptionRecord& r) noexcept;

}  // namespace tcpms::store
