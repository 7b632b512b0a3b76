// What the MQTT workloads put in a PUBLISH payload and how they name clients and topics.
//
// A data payload is message.h's format with the publisher number in the connection field: a
// 16-byte header {publisher u32, sequence u32, timestamp ns u64} (host byte order, CLOCK_MONOTONIC:
// every bench process runs on the one box) followed by a pattern derived from them, so a
// subscriber checks every byte and knows who sent it, which message it is, and when it was due.
// An end marker has sequence kEndSeq and carries, in the timestamp field, how many data messages
// that publisher sent: a subscriber that sees it knows nothing more is coming from it.
//
// Threads: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tcpms/bytes.h"

namespace tcpms::benchapp {

inline constexpr uint32_t kEndSeq = 0xFFFF'FFFFu;

struct BenchPayload {
  uint32_t publisher = 0;
  uint32_t seq = 0;      // kEndSeq: end marker
  uint64_t stamp = 0;    // data: intended send time (ns); end marker: data messages sent
  bool is_end() const noexcept { return seq == kEndSeq; }
};

// Fills `out` (at least kMessageHeaderBytes) with the payload for `p`.
void write_bench_payload(MutableByteView out, const BenchPayload& p) noexcept;
// The payload read back, if every byte is as write_bench_payload made it; else nullopt.
std::optional<BenchPayload> read_bench_payload(ByteView in) noexcept;

// Per-(subscriber, publisher) order check. `next` is the sequence expected next from that
// publisher. Returns what `seq` means: delivered in order (next advances), delivered after a
// gap (the skipped messages are lost: `gap` says how many; QoS 0 drops, since MQTT keeps a
// publisher's order per topic), or a duplicate / reordered message (not counted as delivered).
enum class SeqVerdict : uint8_t { kInOrder, kAfterGap, kDuplicate };
SeqVerdict check_sequence(uint32_t& next, uint32_t seq, uint32_t& gap) noexcept;

// "tb<run hex><role><n>" (role "-" for a client, "c" for a loop's control connection): short
// enough for MQTT 3.1's 23 characters. The run id is the parent bench process's pid, so
// concurrent or earlier runs against one broker never share client ids or topics.
std::string client_id(uint32_t run, std::string_view role, uint64_t n);

// One publish/subscribe pair for mqtt-p2p: client i publishes to the topic of client
// p2p_target(i, n) (a rotation by half the fleet, so most traffic crosses loops and processes),
// and receives only from p2p_source(i, n). n >= 2.
uint64_t p2p_target(uint64_t i, uint64_t n) noexcept;
uint64_t p2p_source(uint64_t i, uint64_t n) noexcept;

}  // namespace tcpms::benchapp
