#include "stream_ledger.h"

namespace tcpms::benchapp {

uint32_t StreamLedger::sent(uint64_t client) {
  entries_.push_back({static_cast<uint32_t>(client), 0});
  return static_cast<uint32_t>(entries_.size() - 1);
}

bool StreamLedger::acked(uint32_t m) {
  if (m >= entries_.size() || (entries_[m].flags & kAcked) != 0) return false;
  entries_[m].flags |= kAcked;
  ++acked_;
  // A message may reach its client before its PUBACK reaches the publisher.
  if ((entries_[m].flags & kDelivered) == 0) ++acked_undelivered_;
  return true;
}

StreamLedger::Delivery StreamLedger::delivered(uint32_t m, uint64_t client) {
  if (m >= entries_.size()) return Delivery::kUnknown;
  Entry& e = entries_[m];
  if (e.client != client) return Delivery::kWrongClient;
  if ((e.flags & kDelivered) != 0) {
    ++duplicates_;
    return Delivery::kDuplicate;
  }
  e.flags |= kDelivered;
  ++delivered_;
  if ((e.flags & kAcked) != 0) --acked_undelivered_;
  return Delivery::kFirst;
}

}  // namespace tcpms::benchapp
