// Counters of the cluster router for /metrics (admin::MetricsSource), plus a histogram of
// Redis round trips. Relaxed atomics: written by loop threads and the two Redis threads, read
// by the admin thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace tcpms::cluster {

struct ClusterMetrics {
  using C = std::atomic<uint64_t>;
  // Messages (publishes and pushes) this node sent to another node, one per target node.
  C messages_out{0}, bytes_out{0};
  C messages_in{0}, bytes_in{0};
  C pushes_out{0}, pushes_in{0};
  C pushes_no_client{0};        // pushes to an id no live node holds
  // Messages that could not cross: Redis unreachable, queue full, or the command failed.
  C dropped_redis_down{0}, dropped_queue_full{0}, dropped_failed{0};
  C takeover_kicks{0};          // local clients closed because they connected on another node
  // Sessions moving between nodes. Fetches (this node's CONNECTs) by how they ended:
  C fetch_found{0}, fetch_none{0}, fetch_timeout{0}, fetch_redis_down{0};
  C session_requests_in{0};     // other nodes asked for a session held here
  C session_requests_stale{0};  // ... read after their requester gave up: answered none
  C sessions_exported{0};       // ... and got its image
  C sessions_late{0};           // images that came after their fetch gave up (adopted or not)
  C sessions_returned{0};       // exported images that could not be sent: kept here instead
  C session_drops{0};           // sessions discarded because their id connected elsewhere
  C redis_errors{0};            // connection failures and error replies
  C redis_reconnects{0};
  C redis_commands{0};
  C rebuilds{0};                // own routes and registry rewritten into Redis
  C route_events_in{0};
  C nodes_alive{0};
  C local_filters{0};
  C remote_routes{0};
  C queue_depth{0};
  std::atomic<bool> command_link_up{false}, subscriber_link_up{false}, stream_link_up{false};
  // Per-node streams: entries dropped as already delivered (a retried batch), messages of
  // failed batches kept and sent again.
  C stream_duplicates{0}, stream_entries_in{0};
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
