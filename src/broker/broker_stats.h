// BrokerStats: one loop's MQTT counters. Written only by that loop's thread (relaxed atomics,
// no contention); read by the admin thread for /metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "tcpms/loop_stats.h"  // Counter: single-writer relaxed atomic

namespace tcpms::broker {

struct BrokerStats {
  std::array<Counter, 16> packets_in;   // by MQTT packet type (1..15)
  std::array<Counter, 16> packets_out;
  Counter bytes_payload_in;
  Counter messages_in;         // PUBLISH received from clients
  Counter messages_out;        // PUBLISH sent to clients
  Counter sessions_connected;  // gauge
  Counter sessions_offline;    // gauge: persistent sessions without a connection
  Counter subscriptions;       // gauge
  Counter queued_messages;     // gauge: QoS 1/2 waiting in sessions
  Counter inflight_messages;   // gauge
  Counter qos0_dropped_slow;   // QoS 0 dropped for a slow consumer
  Counter queue_dropped;       // QoS 1/2 dropped: session at its count or byte bound
  Counter protocol_violations;
  Counter takeovers;
  Counter keepalive_expired;
  Counter connect_timeouts;
  Counter login_timeouts;        // a CONNECT received and not answered in time (server side)
  Counter refused_publishes;   // over a limit (topic levels): connection closed
  Counter connects_refused;    // CONNACK with a non-zero return code
  Counter claims_unanswered_refused;  // persistent CONNECTs refused: the claim went unanswered
  Counter auth_refused;        // ... of which the authenticator's or the will topic's ACL
  Counter cross_loop_posts;    // publish tasks posted to other loops
  Counter shared_deliveries;   // messages given to a shared subscription member here
  Counter shared_skipped;      // a member offline or stalled: the next one took it
  Counter shared_redistributed;  // a leaving member's message given to another member
  Counter shared_handoffs_returned;  // of those, stored ones nobody confirmed: back to it
  Counter acl_publish_denied;  // PUBLISH dropped: the ACL refused the topic
  Counter acl_subscribe_denied;  // SUBACK 0x80: the ACL refused the filter
  Counter authorization_waits;   // PUBLISH/SUBSCRIBE paused while an answer was fetched
  Counter sys_publish_denied;  // PUBLISH to $SYS dropped
  Counter subscriptions_over_limit;  // SUBACK 0x80: mqtt.max_subscriptions_per_client
  Counter rate_limit_pauses;   // reading from a client paused by its publish rate
  Counter link_waits;          // reading from a publisher paused while the links were backed up
  Counter connects_over_rate;  // connections closed after accept: over a connection rate
  Counter session_fetches;     // CONNECTs that asked other processes for their session
  Counter sessions_imported;   // ... and got it (or a late image adopted)
  Counter sessions_exported;   // sessions given up to another process
  Counter session_images_bad;  // images refused by decode_session_image
};

}  // namespace tcpms::broker
