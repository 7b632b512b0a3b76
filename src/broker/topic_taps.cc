#include "broker/topic_taps.h"

#include <algorithm>

#include "mqtt/topic.h"

namespace tcpms::broker {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<uint64_t> TopicTaps::open(std::string_view filter) {
  std::lock_guard lock(mu_);
  expire_locked(now_ms());
  if (taps_.size() >= kMaxTaps) return std::nullopt;
  Tap t;
  t.id = next_id_++;
  t.filter = std::string(filter);
  t.last_read_ms = now_ms();
  taps_.push_back(std::move(t));
  open_.store(taps_.size(), std::memory_order_relaxed);
  return taps_.back().id;
}

bool TopicTaps::close(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(taps_.begin(), taps_.end(), [&](const Tap& t) { return t.id == id; });
  if (it == taps_.end()) return false;
  taps_.erase(it);
  open_.store(taps_.size(), std::memory_order_relaxed);
  return true;
}

std::optional<TopicTaps::Read> TopicTaps::read(uint64_t id, uint64_t after) {
  std::lock_guard lock(mu_);
  const int64_t now = now_ms();
  expire_locked(now);
  auto it = std::find_if(taps_.begin(), taps_.end(), [&](const Tap& t) { return t.id == id; });
  if (it == taps_.end()) return std::nullopt;
  it->last_read_ms = now;
  Read r;
  r.filter = it->filter;
  for (const Entry& e : it->ring)
    if (e.seq > after) r.entries.push_back(e);
  r.next = it->next_seq - 1;
  r.dropped = it->dropped;
  return r;
}

size_t TopicTaps::count() const {
  std::lock_guard lock(mu_);
  return taps_.size();
}

void TopicTaps::offer(const Message& m) {
  const std::string_view topic = as_chars(m.topic.view());
  std::lock_guard lock(mu_);
  for (Tap& t : taps_) {
    if (!mqtt::topic_matches(t.filter, topic)) continue;
    Entry e;
    e.seq = t.next_seq++;
    e.time_unix_ms = unix_ms();
    e.topic = std::string(topic);
    const std::string_view payload = as_chars(m.payload.view());
    e.payload = std::string(payload.substr(0, kMaxPayloadBytes));
    e.payload_bytes = payload.size();
    e.qos = m.qos;
    e.retain = m.retain;
    t.ring.push_back(std::move(e));
    if (t.ring.size() > kRingSize) {
      t.ring.pop_front();
      ++t.dropped;
    }
  }
}

void TopicTaps::expire_locked(int64_t now) {
  std::erase_if(taps_, [&](const Tap& t) { return now - t.last_read_ms > kIdleMs; });
  open_.store(taps_.size(), std::memory_order_relaxed);
}

}  // namespace tcpms::broker
