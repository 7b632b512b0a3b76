#include "server_settings.h"

#include <spdlog/spdlog.h>

#include "store/sync_policy.h"

namespace tcpms::app {

void declare_settings(config::Settings& s, ServerOptions& o) {
  s.add("protocol", o.protocol, "Protocol spoken on the listener").one_of({"mqtt", "echo"});
  s.add("listen", o.listen,
        "HOST:PORT to accept clients on (empty: 0.0.0.0:1883 for mqtt, 127.0.0.1:7000 for echo)");
  s.add("threads", o.threads, "Event loops, one thread each (0: one per CPU)");
  s.add("processes", o.processes,
        "Worker processes sharing the port (SO_REUSEPORT), each with `threads` loops and its own "
        "descriptor limit; more than 1 adds a supervisor that restarts a worker that dies")
      .range(1u, 1000u);
  s.add("max_connections", o.max_connections,
        "Connections held at once; more are accepted and closed at once (0: RLIMIT_NOFILE "
        "minus a reserve)")
      .range(0, int64_t{1} << 40);
  s.add("idle_timeout_s", o.idle_timeout_s,
        "Close a connection after this many seconds without input (0: never)")
      .alias("--idle-timeout");
  s.add("drain_timeout_ms", o.drain_timeout_ms,
        "On SIGTERM/SIGINT, how long to let connections flush before closing what is left")
      .live();  // read by main only when the signal comes
  s.add("output.high_water_bytes", o.output_high_water,
        "Unsent bytes per connection past which reading from it pauses")
      .alias("--output-high-water");
  s.add("output.hard_limit_bytes", o.output_hard_limit,
        "Unsent bytes per connection past which it is closed")
      .alias("--output-hard-limit");
  s.add_rule([&o] {
    return o.output_hard_limit < o.output_high_water
               ? "output.hard_limit_bytes (--output-hard-limit) must be at least "
                 "output.high_water_bytes (--output-high-water)"
               : "";
  });
  s.add("log.level", o.log_level, "Least severe log messages written")
      .one_of({"trace", "debug", "info", "warn", "error", "critical", "off"})
      .live([](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); });
  s.add("admin.listen", o.admin_listen, "HOST:PORT of the admin HTTP API and dashboard");
  s.add("admin.token", o.admin_token,
        "Bearer token the admin API requires (needed when it listens beyond loopback)");
  s.add("admin.disabled", o.no_admin, "Do not start the admin HTTP API").alias("--no-admin");

  auto& m = o.mqtt;
  s.add("mqtt.max_packet_size", m.max_packet_size,
        "Largest MQTT packet a client may send, in bytes; larger closes the connection")
      .range(16u, 268435460u)
      .alias("--max-packet-size");
  s.add("mqtt.max_inflight", m.max_inflight,
        "QoS 1/2 messages in flight to one client; more wait in its session")
      .range(uint16_t{1}, uint16_t{65535})
      .alias("--max-inflight");
  s.add("mqtt.max_queued_messages", m.max_queued_messages,
        "QoS 1/2 messages kept per client (offline or backlogged); newer ones are dropped and "
        "counted")
      .range(1u, 0xffffffffu)
      .alias("--max-queued-messages");
  s.add("mqtt.max_queued_bytes", m.max_queued_bytes,
        "Unsent bytes per client past which it is a slow consumer: QoS 0 to it is dropped "
        "(counted), QoS 1/2 waits in its session (also the engine's output high-water mark for "
        "MQTT)")
      .range(size_t{1024}, size_t{1} << 40)
      .alias("--max-queued-bytes");
  s.add("mqtt.max_session_bytes", m.max_session_bytes,
        "Payload bytes of QoS 1/2 messages waiting in one session; past it new ones are dropped "
        "and counted (0: bounded by mqtt.max_queued_messages only)")
      .alias("--max-session-bytes");
  s.add("mqtt.max_client_id_len", m.max_client_id_len,
        "Longest client id accepted; longer ids get CONNACK 0x02")
      .range(1u, 65535u)
      .alias("--max-client-id-len");
  s.add("mqtt.max_topic_levels", m.max_topic_levels,
        "Deepest topic or filter accepted (SUBACK 0x80, or close on PUBLISH)")
      .range(1u, 65535u)
      .alias("--max-topic-levels");
  s.add("mqtt.connect_timeout_s", o.mqtt_connect_timeout_s,
        "Seconds a new connection has to send CONNECT")
      .range(1u, 3600u)
      .alias("--connect-timeout");
  s.add("mqtt.sys_interval_s", o.mqtt_sys_interval_s,
        "Seconds between $SYS/ statistics publications (0: off)")
      .alias("--sys-interval");
  s.add("mqtt.max_subscriptions_per_client", m.max_subscriptions_per_client,
        "Subscriptions one client may hold; more get SUBACK 0x80 (0: no limit)")
      .alias("--max-subscriptions");
  s.add("mqtt.client_messages_per_s", m.client_messages_per_s,
        "PUBLISH packets per second one client may send; over it reading from the client "
        "pauses until it may send again, nothing is dropped (0: no limit)")
      .range(0.0, 1e9);
  s.add("mqtt.client_message_burst", m.client_message_burst,
        "PUBLISH packets a client may send at once before mqtt.client_messages_per_s applies")
      .range(1.0, 1e9);
  s.add("mqtt.client_bytes_per_s", m.client_bytes_per_s,
        "PUBLISH bytes (whole packets) per second one client may send; over it reading "
        "pauses (0: no limit)")
      .range(0.0, 1e12);
  s.add("mqtt.client_bytes_burst", m.client_bytes_burst,
        "PUBLISH bytes a client may send at once before mqtt.client_bytes_per_s applies (a "
        "larger packet costs the whole burst)")
      .range(1.0, 1e12);
  s.add("mqtt.connects_per_s_per_source", m.connects_per_s_per_source,
        "New connections per second from one address (IPv6: its /64); more are closed at once "
        "after accept, counted (0: no limit)")
      .range(0.0, 1e9);
  s.add("mqtt.connect_burst_per_source", m.connect_burst_per_source,
        "New connections one address may open at once before mqtt.connects_per_s_per_source "
        "applies")
      .range(1.0, 1e9);
  s.add("mqtt.connects_per_s", m.connects_per_s,
        "New connections per second in this process, all sources together; more are closed at "
        "once after accept, counted (0: no limit)")
      .range(0.0, 1e9);
  s.add("mqtt.connect_burst", m.connect_burst,
        "New connections accepted at once before mqtt.connects_per_s applies")
      .range(1.0, 1e9);
  s.add("mqtt.auth_users", o.mqtt_auth_users,
        "NAME:PASSWORD pairs accepted at CONNECT, in plain text: a stand-in for tests (use "
        "auth.password_file)")
      .check([](const std::vector<std::string>& users) -> std::string {
        for (const auto& u : users) {
          if (u.find(':') == std::string::npos || u.front() == ':') {
            return "wants NAME:PASSWORD, got '" + u + "'";
          }
        }
        return {};
      })
      .describe("NAME:PASSWORD each")
      .alias("--auth-user");
  s.add("auth.password_file", o.auth_password_file,
        "Password file (mosquitto_passwd / tcpms-passwd format); set, only its users and "
        "(with auth.allow_anonymous) anonymous clients get in. Re-read on SIGHUP")
      .alias("--password-file");
  s.add("auth.acl_file", o.auth_acl_file,
        "ACL file (Mosquitto acl_file format, %c/%u patterns) for PUBLISH and SUBSCRIBE; unset, "
        "everything is allowed but publishing to $SYS. Re-read on SIGHUP")
      .alias("--acl-file");
  s.add("auth.allow_anonymous", o.auth_allow_anonymous,
        "Accept CONNECT without a user name even with a password file (without one, and "
        "without auth.deny_anonymous, anonymous clients are accepted anyway)")
      .alias("--allow-anonymous");
  s.add("auth.deny_anonymous", o.mqtt_deny_anonymous,
        "Refuse CONNECT without a user name (CONNACK 0x05), with or without a password file")
      .alias("--deny-anonymous")
      .alias("--mqtt-deny-anonymous");
  s.add_rule([&o] {
    if (o.auth_allow_anonymous && o.mqtt_deny_anonymous)
      return "auth.allow_anonymous and auth.deny_anonymous contradict each other";
    if (!o.auth_password_file.empty() && !o.mqtt_auth_users.empty())
      return "auth.password_file and mqtt.auth_users (--auth-user) exclude each other";
    return "";
  });
  s.add("auth.login_failures_per_s", o.auth_login_failures_per_s,
        "Failed logins per second one address (IPv6: its /64) may make after its burst; more "
        "get CONNACK 0x05 without a password check (0: no throttle)")
      .range(0.0, 1e9);
  s.add("auth.login_failure_burst", o.auth_login_failure_burst,
        "Failed logins one address may make at once before auth.login_failures_per_s applies")
      .range(1.0, 1e9);
  s.add("cluster.redis", o.cluster_redis,
        "redis://HOST:PORT through which this node routes to other tcpms nodes (docs/cluster.md; "
        "empty: a single node, no Redis)")
      .alias("--cluster");
  s.add("cluster.node_id", o.cluster_node_id,
        "This node's name in the cluster, unique among the nodes (empty: the host name)")
      .alias("--node-id");
  s.add("cluster.lease_s", o.cluster_lease_s,
        "Seconds a dead node's routes and clients stay in Redis (refreshed every third of it)")
      .range(1u, 3600u);
  s.add("cluster.session_fetch_timeout_ms", o.cluster_session_fetch_timeout_ms,
        "How long a CONNECT with CleanSession 0 waits for another node to hand over the "
        "client's session before going on without it (a session arriving later is kept only "
        "if the id has none here by then)")
      .range(100u, 600000u);
  s.add("persistence.dir", o.persistence_dir,
        "Directory of the persistent store: sessions, subscriptions, retained and queued "
        "messages survive a restart or kill -9 (docs/persistence.md; empty: off, all in memory; "
        "with processes > 1 each worker uses DIR/worker-<k>)");
  s.add("persistence.sync", o.persistence_sync,
        "When the store reaches the disk: every-message (acknowledgements wait for it), an "
        "interval such as 50ms (at most that much is lost on power loss), or off");
  s.add("persistence.on_damage", o.persistence_on_damage,
        "A damaged store at start-up: salvage (keep the damaged files aside, start with what "
        "can be read) or refuse (do not start)")
      .one_of({"salvage", "refuse"});
  s.add_rule([&o] {
    std::string error;
    if (!store::parse_sync_policy(o.persistence_sync, error)) return "persistence.sync: " + error;
    return std::string();
  });
}

}  // namespace tcpms::app
