// Counters of the cluster's Redis transport (redis_transport.h) for /metrics (admin::MetricsSource), plus a histogram of
// Redis round trips. Relaxed atomics: written by loop threads and the Redis threads, read
// by the admin thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace tcpms::cluster {

struct ClusterMetrics {
  using C = std::atomic<uint64_t>;
  // Routing frames (src/routing/frame.h) this node wrote into other nodes' streams, and read
  // from its own. "up" control entries are not counted.
  C messages_out{0}, bytes_out{0};
  C messages_in{0}, bytes_in{0};
  // Frames that could not cross: Redis unreachable, queue full, or a failed batch whose retry
  // was dropped. Their peers are told "up" and everything again.
  C dropped_redis_down{0}, dropped_queue_full{0}, dropped_failed{0};
  C redis_errors{0};            // connection failures and error replies
  C redis_reconnects{0};
  C redis_commands{0};
  C rebuilds{0};                // joins: the lease written (again), the peers scanned
  C nodes_alive{0};             // other nodes up
  C nodes_with_interest{0};     // of those, the ones with any subscription (set when rendered)
  C queue_depth{0};
  std::atomic<bool> command_link_up{false}, stream_link_up{false};
  // This node's stream: entries read, dropped as already delivered (a retried batch), or
  // refused as malformed; frames of failed batches kept and sent again.
  C stream_duplicates{0}, stream_entries_in{0}, stream_bad{0};
  C outbox_retried{0}, outbox_depth{0};

  // Round-trip time of one pipelined batch on the command connection.
  static constexpr std::array<uint64_t, 11> kLatencyBucketsUs{100,   250,   500,    1000,   2500,  5000,
                                                              10000, 25000, 100000, 500000, 2000000};
  std::array<C, kLatencyBucketsUs.size() + 1> latency_buckets{};  // last is +Inf
  C latency_sum_us{0}, latency_count{0};
  void observe_latency_us(uint64_t us) noexcept;

  void render(std::string& out, const std::string& node) const;
};

}  // namespace tcpms::cluster
