// MessageProps: the MQTT 5.0 properties of one published message, as the broker keeps them next
// to its topic and payload (OutMessage, RetainedMessage, Will).
//
// `wire` holds the encoded properties a 5.0 subscriber gets unchanged (Payload Format
// Indicator, Content Type, Response Topic, Correlation Data, User Properties in their order),
// built once per publish and shared by every subscriber like the payload. Message Expiry
// Interval is not in it: it is sent per subscriber, decremented by the time the message waited
// [MQTT-3.3.2-6], so the deadline is kept instead. Topic Alias and Subscription Identifier are
// per connection and never stored. 3.1.1 subscribers get no properties at all.
//
// Thread rules: a value type; SharedBytes may be shared by any threads.
#pragma once

#include <chrono>
#include <cstdint>

#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

struct MessageProps {
  SharedBytes wire;
  uint64_t expires_at_ms = 0;  // steady clock (CLOCK_MONOTONIC) ms; 0: no Message Expiry

  bool empty() const noexcept { return wire.empty() && expires_at_ms == 0; }
};

// Milliseconds of the steady clock, the one every loop and the retained store compare against.
inline uint64_t steady_ms() noexcept {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Seconds left before `expires_at_ms` (rounded up), or 0 once it has passed.
inline uint32_t expiry_left_s(uint64_t expires_at_ms, uint64_t now_ms) noexcept {
  if (expires_at_ms <= now_ms) return 0;
  return static_cast<uint32_t>((expires_at_ms - now_ms + 999) / 1000);
}

}  // namespace tcpms::broker
