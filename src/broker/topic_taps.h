// TopicTaps: the dashboard's topic viewer. A tap is a filter and a ring of the last messages
// that matched it, read by polling (GET /api/v1/taps/{id}?after=SEQ). Every message routed in
// this process (clients, wills, the API, other processes) is offered once, on the loop where
// it entered the broker, before delivery. Without a tap that costs one relaxed atomic load
// per message; with taps, a filter match per tap under a mutex, so they are for watching,
// not for production fan-out.
//
// Bounded: at most kMaxTaps taps, kRingSize messages each, payloads cut to kMaxPayloadBytes.
// A tap nobody read for kIdleMs closes itself (a dashboard tab that went away).
//
// Thread rules: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.h"

namespace tcpms::broker {

class TopicTaps {
 public:
  static constexpr size_t kMaxTaps = 16;
  static constexpr size_t kRingSize = 200;
  static constexpr size_t kMaxPayloadBytes = 4096;
  static constexpr int64_t kIdleMs = 60000;

  struct Entry {
    uint64_t seq = 0;        // per tap, from 1
    int64_t time_unix_ms = 0;
    std::string topic;
    std::string payload;     // at most kMaxPayloadBytes
    size_t payload_bytes = 0;  // the whole payload's size
    mqtt::QoS qos = mqtt::QoS::k0;
    bool retain = false;
  };
  struct Read {
    std::string filter;
    std::vector<Entry> entries;  // seq > after, oldest first
    uint64_t next = 0;           // pass as `after` next time
    uint64_t dropped = 0;        // entries pushed out of the full ring since the tap opened
  };

  // A new tap on `filter` (a valid topic filter); nullopt when kMaxTaps are open.
  std::optional<uint64_t> open(std::string_view filter);
  bool close(uint64_t id);
  std::optional<Read> read(uint64_t id, uint64_t after);
  size_t count() const;

  bool active() const noexcept { return open_.load(std::memory_order_relaxed) != 0; }
  void offer(const Message& m);

 private:
  struct Tap {
    uint64_t id = 0;
    std::string filter;
    std::deque<Entry> ring;
    uint64_t next_seq = 1;
    uint64_t dropped = 0;
    int64_t last_read_ms = 0;
  };
  void expire_locked(int64_t now_ms);

  mutable std::mutex mu_;
  std::vector<Tap> taps_;
  uint64_t next_id_ = 1;
  std::atomic<size_t> open_{0};
};

}  // namespace tcpms::broker
