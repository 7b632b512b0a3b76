// SyncPolicy: when the store makes its writes durable (persistence.sync / --persistence-sync).
//
//   every-message  each group commit is fsync'ed before the loops hear it is durable, and the
//                  broker sends PUBACK/PUBREC/PUBCOMP (and QoS 2 PUBLISH/PUBREL) only then:
//                  nothing acknowledged is lost, even on power loss. The default.
//   <N>ms / <N>s   commits go to the OS every few ms (min(N, 5 ms)) and are fsync'ed every N:
//                  a kill -9 loses at most the last few ms, a power loss at most N. Acks do not
//                  wait.
//   off            commits go to the OS every 5 ms, never fsync'ed by us (SQLite still syncs at
//                  its checkpoints, so the file stays consistent): a kill -9 loses at most the
//                  last few ms, a power loss whatever the kernel had not written back.
//
// Pure functions. Thread rules: none.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tcpms::store {

enum class SyncMode : uint8_t { kEveryMessage, kInterval, kOff };

struct SyncPolicy {
  SyncMode mode = SyncMode::kEveryMessage;
  uint32_t interval_ms = 0;  // kInterval only
  // How long a batch may wait to grow before it is committed (0: commit as soon as the store
  // thread is free, which is what group commit under fsync gives by itself).
  uint32_t commit_window_ms() const noexcept;
  bool operator==(const SyncPolicy&) const = default;
};

// "every-message", "off", "50ms", "2s" (1 ms .. 60 s). nullopt and `error` set otherwise.
std::optional<SyncPolicy> parse_sync_policy(std::string_view text, std::string& error);
std::string to_string(const SyncPolicy& p);

}  // namespace tcpms::store
