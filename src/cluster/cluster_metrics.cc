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
      {"tcpms_cluster_nodes_alive", "gauge", "Other nodes holding a lease in Redis.", &ClusterMetrics::nodes_alive},
      {"tcpms_cluster_local_filters", "gauge", "Distinct filters subscribed on this node (published as routes).",
       &ClusterMetrics::local_filters},
      {"tcpms_cluster_remote_routes", "gauge", "(node, filter) routes of other nodes in the local trie.",
       &ClusterMetrics::remote_routes},
      {"tcpms_cluster_messages_out_total", "counter", "Messages sent to another node (one per target node).",
       &ClusterMetrics::messages_out},
      {"tcpms_cluster_bytes_out_total", "counter", "Frame bytes sent to other nodes.", &ClusterMetrics::bytes_out},
      {"tcpms_cluster_messages_in_total", "counter", "Messages received from other nodes.",
       &ClusterMetrics::messages_in},
      {"tcpms_cluster_bytes_in_total", "counter", "Frame bytes received from other nodes.", &ClusterMetrics::bytes_in},
      {"tcpms_cluster_pushes_out_total", "counter", "Pushes to a client id found in the Redis registry.",
       &ClusterMetrics::pushes_out},
      {"tcpms_cluster_pushes_in_total", "counter", "Pushes from other nodes delivered here.",
       &ClusterMetrics::pushes_in},
      {"tcpms_cluster_pushes_no_client_total", "counter", "Pushes to a client id no live node holds (HTTP 404).",
       &ClusterMetrics::pushes_no_client},
      {"tcpms_cluster_takeover_kicks_total", "counter",
       "Local clients closed because their client id connected on another node.", &ClusterMetrics::takeover_kicks},
      {"tcpms_cluster_session_requests_in_total", "counter", "Other nodes' requests for a session held here.",
       &ClusterMetrics::session_requests_in},
      {"tcpms_cluster_session_requests_stale_total", "counter",
       "Session requests read after their requester's timeout (in Redis' clock): answered none.",
       &ClusterMetrics::session_requests_stale},
      {"tcpms_cluster_sessions_exported_total", "counter", "Session images sent to another node.",
       &ClusterMetrics::sessions_exported},
      {"tcpms_cluster_sessions_late_total", "counter",
       "Session images that arrived after their fetch gave up (handed to Broker::adopt_session).",
       &ClusterMetrics::sessions_late},
      {"tcpms_cluster_sessions_returned_total", "counter",
       "Exported session images that could not be sent (Redis down): kept on this node.",
       &ClusterMetrics::sessions_returned},
      {"tcpms_cluster_session_drops_total", "counter",
       "Sessions discarded here because their client id connected on another node.",
       &ClusterMetrics::session_drops},
      {"tcpms_cluster_stream_entries_in_total", "counter", "Entries read from this node's stream.",
       &ClusterMetrics::stream_entries_in},
      {"tcpms_cluster_stream_duplicates_total", "counter",
       "Stream entries dropped as already delivered (a sender retried a batch).", &ClusterMetrics::stream_duplicates},
      {"tcpms_cluster_outbox_retried_total", "counter",
       "Messages of failed batches sent again once Redis was back.", &ClusterMetrics::outbox_retried},
      {"tcpms_cluster_outbox_depth", "gauge", "Messages of failed batches waiting to be sent again.",
       &ClusterMetrics::outbox_depth},
      {"tcpms_cluster_route_events_in_total", "counter", "Route change notifications received.",
       &ClusterMetrics::route_events_in},
      {"tcpms_cluster_redis_errors_total", "counter", "Redis connection failures and error replies.",
       &ClusterMetrics::redis_errors},
      {"tcpms_cluster_redis_reconnects_total", "counter", "Redis connections re-established.",
       &ClusterMetrics::redis_reconnects},
      {"tcpms_cluster_redis_commands_total", "counter", "Commands sent on the command connection.",
       &ClusterMetrics::redis_commands},
      {"tcpms_cluster_rebuilds_total", "counter", "Times this node rewrote its routes and registry in Redis.",
       &ClusterMetrics::rebuilds},
      {"tcpms_cluster_queue_depth", "gauge", "Operations waiting for the Redis command thread.",
       &ClusterMetrics::queue_depth},
  };
  for (const Family& f : kFamilies) {
    family(f.name, f.type, f.help);
    fmt::format_to(o, "{}{{node=\"{}\"}} {}\n", f.name, node, get(this->*f.field));
  }
  family("tcpms_cluster_dropped_total", "counter", "Messages that could not cross to another node, by cause.");
  fmt::format_to(o, "tcpms_cluster_dropped_total{{node=\"{}\",reason=\"redis_down\"}} {}\n", node,
                 get(dropped_redis_down));
  fmt::format_to(o, "tcpms_cluster_dropped_total{{node=\"{}\",reason=\"queue_full\"}} {}\n", node,
                 get(dropped_queue_full));
  fmt::format_to(o, "tcpms_cluster_dropped_total{{node=\"{}\",reason=\"failed\"}} {}\n", node,
                 get(dropped_failed));
  family("tcpms_cluster_session_fetches_total", "counter",
         "Sessions asked of other nodes by a CONNECT here, by outcome.");
  const std::pair<const char*, const C*> fetches[] = {
      {"found", &fetch_found}, {"none", &fetch_none}, {"timeout", &fetch_timeout}, {"redis_down", &fetch_redis_down}};
  for (const auto& [result, c] : fetches)
    fmt::format_to(o, "tcpms_cluster_session_fetches_total{{node=\"{}\",result=\"{}\"}} {}\n", node, result, get(*c));
  family("tcpms_cluster_redis_up", "gauge", "1 while the connection to Redis is up, by link.");
  fmt::format_to(o, "tcpms_cluster_redis_up{{node=\"{}\",link=\"command\"}} {}\n", node,
                 get(command_link_up) ? 1 : 0);
  fmt::format_to(o, "tcpms_cluster_redis_up{{node=\"{}\",link=\"subscriber\"}} {}\n", node,
                 get(subscriber_link_up) ? 1 : 0);
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
