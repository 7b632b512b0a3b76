#include "cluster/cluster_metrics.h"

#include <iterator>
#include <utility>

#include <fmt/format.h>

namespace tcpms::cluster {

void ClusterMetrics::observe_latency_us(uint64_t us) noexcept {
  size_t i = 0;
  while (i < kLatencyBucketsUs.size() && us > kLatencyBucketsUs[i]) ++i;
  latency_buckets[i].fetch_add(1, std::memory_order_relaxed);
  latency_sum_us.fetch_add(us, std::memory_order_relaxed);
  latency_count.fetch_add(1, std::memory_order_relaxed);
}

void ClusterMetrics::render(std::string& out, const std::string& node) const {
  auto o = std::back_inserter(out);
  auto get = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  auto family = [&](const char* name, const char* type, const char* help) {
    fmt::format_to(o, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    C ClusterMetrics::*field;
  };
  static const Family kFamilies[] = {
      {"tcpms_cluster_nodes_alive", "gauge", "Other nodes holding a lease in Redis (peers up).",
       &ClusterMetrics::nodes_alive},
      {"tcpms_cluster_nodes_with_interest", "gauge",
       "Other nodes whose interest bitmap has a subscription (publishes may cross to them).",
       &ClusterMetrics::nodes_with_interest},
      {"tcpms_cluster_messages_out_total", "counter",
       "Routing frames written into other nodes' streams (publishes, claims, interest, ...).",
       &ClusterMetrics::messages_out},
      {"tcpms_cluster_bytes_out_total", "counter", "Frame bytes sent to other nodes.", &ClusterMetrics::bytes_out},
      {"tcpms_cluster_messages_in_total", "counter", "Routing frames read from this node's stream.",
       &ClusterMetrics::messages_in},
      {"tcpms_cluster_bytes_in_total", "counter", "Frame bytes received from other nodes.", &ClusterMetrics::bytes_in},
      {"tcpms_cluster_stream_entries_in_total", "counter", "Entries read from this node's stream.",
       &ClusterMetrics::stream_entries_in},
      {"tcpms_cluster_stream_duplicates_total", "counter",
       "Stream entries dropped as already delivered (a sender retried a batch).", &ClusterMetrics::stream_duplicates},
      {"tcpms_cluster_stream_bad_total", "counter", "Stream entries refused as malformed.",
       &ClusterMetrics::stream_bad},
      {"tcpms_cluster_outbox_retried_total", "counter",
       "Frames of failed batches sent again once Redis was back.", &ClusterMetrics::outbox_retried},
      {"tcpms_cluster_outbox_depth", "gauge", "Frames of failed batches waiting to be sent again.",
       &ClusterMetrics::outbox_depth},
      {"tcpms_cluster_redis_errors_total", "counter", "Redis connection failures and error replies.",
       &ClusterMetrics::redis_errors},
      {"tcpms_cluster_redis_reconnects_total", "counter", "Redis connections re-established.",
       &ClusterMetrics::redis_reconnects},
      {"tcpms_cluster_redis_commands_total", "counter", "Commands sent on the command connection.",
       &ClusterMetrics::redis_commands},
      {"tcpms_cluster_rebuilds_total", "counter", "Times this node wrote its lease anew (joins).",
       &ClusterMetrics::rebuilds},
      {"tcpms_cluster_queue_depth", "gauge", "Frames waiting for the Redis command thread.",
       &ClusterMetrics::queue_depth},
  };
  for (const Family& f : kFamilies) {
    family(f.name, f.type, f.help);
    fmt::format_to(o, "{}{{node=\"{}\"}} {}\n", f.name, node, get(this->*f.field));
  }
  family("tcpms_cluster_dropped_total", "counter", "Frames that could not cross to another node, by cause.");
  fmt::format_to(o, "tcpms_cluster_dropped_total{{node=\"{}\",reason=\"redis_down\"}} {}\n", node,
                 get(dropped_redis_down));
  fmt::format_to(o, "tcpms_cluster_dropped_total{{node=\"{}\",reason=\"queue_full\"}} {}\n", node,
                 get(dropped_queue_full));
  fmt::format_to(o, "tcpms_cluster_dropped_total{{node=\"{}\",reason=\"failed\"}} {}\n", node,
                 get(dropped_failed));
  family("tcpms_cluster_redis_up", "gauge", "1 while the connection to Redis is up, by link.");
  fmt::format_to(o, "tcpms_cluster_redis_up{{node=\"{}\",link=\"command\"}} {}\n", node,
                 get(command_link_up) ? 1 : 0);
  fmt::format_to(o, "tcpms_cluster_redis_up{{node=\"{}\",link=\"stream\"}} {}\n", node,
                 get(stream_link_up) ? 1 : 0);
  family("tcpms_cluster_redis_latency_seconds", "histogram", "Round trip of one pipelined batch of Redis commands.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBucketsUs.size(); ++i) {
    cumulative += get(latency_buckets[i]);
    fmt::format_to(o, "tcpms_cluster_redis_latency_seconds_bucket{{node=\"{}\",le=\"{}\"}} {}\n", node,
                   static_cast<double>(kLatencyBucketsUs[i]) / 1e6, cumulative);
  }
  cumulative += get(latency_buckets.back());
  fmt::format_to(o, "tcpms_cluster_redis_latency_seconds_bucket{{node=\"{}\",le=\"+Inf\"}} {}\n", node, cumulative);
  fmt::format_to(o, "tcpms_cluster_redis_latency_seconds_sum{{node=\"{}\"}} {}\n", node,
                 static_cast<double>(get(latency_sum_us)) / 1e6);
  fmt::format_to(o, "tcpms_cluster_redis_latency_seconds_count{{node=\"{}\"}} {}\n", node, get(latency_count));
}

}  // namespace tcpms::cluster
