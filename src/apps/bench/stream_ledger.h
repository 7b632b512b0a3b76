// The bookkeeping of mqtt-reach's stream stage for one loop (mqtt_reach_driver.h, "stream"):
// messages numbered 0, 1, 2... in the order they are sent, each to one of the loop's clients
// round robin; which ones the broker acknowledged to the publisher (PUBACK) and which ones
// their client received, so that the loop tells lost (acknowledged, never delivered) from
// duplicated and from still in flight, without asking any other loop.
//
// Threads: one (a loop's). Pure bookkeeping, no I/O.
#pragma once

#include <cstdint>
#include <vector>

namespace tcpms::benchapp {

class StreamLedger {
 public:
  explicit StreamLedger(uint64_t clients) : clients_(clients) {}

  // The client the next message goes to, round robin over [0, clients), advancing past it.
  // The caller skips a client that cannot take one by asking again (at most clients times).
  uint64_t next_client() noexcept {
    const uint64_t c = cursor_;
    cursor_ = cursor_ + 1 == clients_ ? 0 : cursor_ + 1;
    return c;
  }
  uint64_t clients() const noexcept { return clients_; }

  // A message to `client` was sent: returns its number.
  uint32_t sent(uint64_t client);

  // The broker acknowledged message `m`; false if no such message was sent, or it was
  // acknowledged already (both are protocol errors of the broker).
  bool acked(uint32_t m);

  enum class Delivery : uint8_t { kFirst, kDuplicate, kUnknown, kWrongClient };
  // Message `m` arrived at `client`.
  Delivery delivered(uint32_t m, uint64_t client);

  uint64_t sent_count() const noexcept { return entries_.size(); }
  uint64_t acked_count() const noexcept { return acked_; }
  uint64_t delivered_count() const noexcept { return delivered_; }  // unique
  uint64_t duplicates() const noexcept { return duplicates_; }
  // Acknowledged and not (yet) delivered: once nothing more can come, these are lost.
  uint64_t acked_undelivered() const noexcept { return acked_undelivered_; }
  // Sent and not (yet) acknowledged.
  uint64_t unacked() const noexcept { return entries_.size() - acked_; }

 private:
  static constexpr uint8_t kAcked = 1, kDelivered = 2;
  struct Entry {
    uint32_t client = 0;
    uint8_t flags = 0;
  };

  const uint64_t clients_;
  uint64_t cursor_ = 0;
  std::vector<Entry> entries_;  // by message number
  uint64_t acked_ = 0, delivered_ = 0, duplicates_ = 0, acked_undelivered_ = 0;
};

}  // namespace tcpms::benchapp
