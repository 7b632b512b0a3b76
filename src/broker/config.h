// BrokerConfig: every MQTT limit and period, with its default. Filled from tcpms-server flags
// (src/apps/server/server_options.cc); read-only once the broker starts, so any thread may read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "broker/client_log.h"

namespace tcpms::broker {

struct BrokerConfig {
  // Largest whole packet (fixed header + body) a client may send; past it the connection is
  // closed as soon as the fixed header is read, before any of the body is buffered.
  uint32_t max_packet_size = 1 << 20;
  // QoS 1/2 messages sent to one client and not yet acknowledged; more wait in its session.
  uint16_t max_inflight = 20;
  // QoS 1/2 messages waiting per client (offline, window full, or output backlog); past it new
  // ones are dropped and counted (Mosquitto's max_queued_messages policy: keep the oldest).
  // Larger than Mosquitto's 1000: we take publishes faster than a typical subscriber acks
  // them, and a queue costs nothing until it is used.
  uint32_t max_queued_messages = 100000;
  // Unsent bytes per client in the engine past which it is a slow consumer: QoS 0 messages to
  // it are dropped (counted), QoS 1/2 wait in its session (bounded by the two limits above
  // and below).
  size_t max_queued_bytes = 16 << 20;
  // Bytes the QoS 1/2 messages of one session may hold, queued and in flight together, as
  // held_bytes_of (inflight.h) counts them (entries, topics, payloads, properties, each shared
  // buffer in full); past it new ones are dropped and counted. One message is always admitted
  // into an empty session. 0: bounded by max_queued_messages and max_inflight only, which is no
  // bound in bytes worth the name (100,000 x a 1 MiB packet).
  size_t max_session_bytes = 16 << 20;
  uint32_t max_client_id_len = 256;   // longer ids get CONNACK 0x02 [MQTT-3.1.3-9]
  uint32_t max_topic_levels = 32;     // deeper topics/filters are refused
  uint32_t connect_timeout_ms = 10000;  // accept -> CONNECT deadline
  // CONNECT arrived -> CONNACK: the server's own work (authentication, the id's claim, a
  // session from elsewhere), each step with a shorter bound of its own. Only a login stuck for
  // good should reach it: a server too busy to answer in time that closes the login anyway
  // gains nothing, as the client comes back and asks again.
  uint32_t login_timeout_ms = 60000;
  uint32_t sys_interval_ms = 10000;     // $SYS/ publication period (0: off)
  // Limits against abuse (0: off). Subscriptions per client past the limit get SUBACK 0x80.
  uint32_t max_subscriptions_per_client = 0;
  // Per-client PUBLISH rate (messages and payload+topic bytes per second, with bursts): over
  // it, reading from the client pauses until its bucket refills; nothing is dropped.
  double client_messages_per_s = 0;
  double client_message_burst = 100;
  double client_bytes_per_s = 0;
  double client_bytes_burst = 1 << 20;
  // New connections per second per source address (IPv4, IPv6 /64) and overall: over it a
  // connection is closed right after accept, counted.
  double connects_per_s_per_source = 0;
  double connect_burst_per_source = 20;
  double connects_per_s = 0;
  double connect_burst = 1000;
  size_t connect_rate_sources = 65536;  // the per-source table's bound
  // With other processes (workers, cluster nodes): a SUBACK waits until every one of them
  // knows the new filters, so a message published anywhere after it reaches the subscriber.
  // Off: the SUBACK goes at once, and for about an interest interval a publish on another
  // process can miss the new subscriber (docs/scale.md, "The missing messages").
  bool suback_waits_for_peers = true;
  bool allow_zero_length_client_id = true;  // [MQTT-3.1.3-6] assign one (clean session only)
  // Generated ids are <prefix><n>. With several processes (workers, cluster nodes) each sets
  // its own prefix (apps/server: "tcpms-<node>-w<k>-"), so ids stay unique across them.
  std::string client_id_prefix = "tcpms-";
  // Largest session image (session_image.h) sent to another process. The link between
  // worker processes closes past its output hard limit, so queued messages past this are
  // left out of the image (dropped, counted in tcpms_mqtt_queue_dropped_total, logged).
  size_t max_session_image_bytes = 8 << 20;
  std::string version = "tcpms 0.1.0";
  // Connect, disconnect and authentication-failure log lines (client_log.h).
  ClientLogConfig client_log;
};

}  // namespace tcpms::broker
