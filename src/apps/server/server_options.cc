#include "server_options.h"

#include <CLI/CLI.hpp>

namespace tcpms::app {

int parse_server_options(int argc, char** argv, ServerOptions& o) {
  CLI::App app{"tcpms-server: a TCP message server for very many persistent connections"};
  app.set_version_flag("--version", "tcpms 0.1.0");
  app.add_option("--protocol", o.protocol, "Protocol on the listener")
      ->check(CLI::IsMember({"mqtt", "echo"}))
      ->capture_default_str();
  app.add_option("--listen", o.listen,
                 "HOST:PORT to accept clients on (mqtt: 0.0.0.0:1883, echo: 127.0.0.1:7000)");
  app.add_option("--admin-listen", o.admin_listen, "HOST:PORT of the admin HTTP API")
      ->capture_default_str();
  app.add_option("--admin-token", o.admin_token,
                 "Bearer token the admin API requires (needed when it listens beyond loopback)");
  app.add_flag("--no-admin", o.no_admin, "Do not start the admin HTTP API");
  app.add_option("--threads", o.threads, "Event loops (0: one per CPU)")->capture_default_str();
  app.add_option("--processes", o.processes,
                 "Worker processes sharing the port (SO_REUSEPORT), each with --threads loops and "
                 "its own descriptor limit; >1 adds a supervisor that restarts a worker that dies")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections,
                 "Connections held at once; more are accepted and closed at once "
                 "(0: RLIMIT_NOFILE minus a reserve)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--idle-timeout", o.idle_timeout_s,
                 "Close a connection after this many seconds without input (0: never)")
      ->capture_default_str();
  app.add_option("--drain-timeout-ms", o.drain_timeout_ms,
                 "On SIGTERM/SIGINT, how long to flush before closing what is left")
      ->capture_default_str();
  app.add_option("--output-high-water", o.output_high_water,
                 "Unsent bytes per connection past which reading from it pauses")
      ->capture_default_str();
  app.add_option("--output-hard-limit", o.output_hard_limit,
                 "Unsent bytes per connection past which it is closed")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  auto* mq = "MQTT (--protocol mqtt)";
  app.add_option("--max-packet-size", o.mqtt.max_packet_size,
                 "Largest MQTT packet a client may send, in bytes; larger closes the connection")
      ->group(mq)->check(CLI::Range(16u, 268435460u))->capture_default_str();
  app.add_option("--max-inflight", o.mqtt.max_inflight,
                 "QoS 1/2 messages in flight to one client; more wait in its session")
      ->group(mq)->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_option("--max-queued-messages", o.mqtt.max_queued_messages,
                 "QoS 1/2 messages kept per client (offline or backlogged); newer ones are "
                 "dropped and counted")
      ->group(mq)->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--max-queued-bytes", o.mqtt.max_queued_bytes,
                 "Unsent bytes per client past which it is a slow consumer: QoS 0 to it is "
                 "dropped (counted), QoS 1/2 waits in its session (also the engine's "
                 "output high-water mark for MQTT)")
      ->group(mq)->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 40))->capture_default_str();
  app.add_option("--max-session-bytes", o.mqtt.max_session_bytes,
                 "Bytes of QoS 1/2 messages kept per session; newer ones are dropped and "
                 "counted (0: only --max-queued-messages bounds it)")
      ->group(mq)->capture_default_str();
  app.add_option("--max-client-id-len", o.mqtt.max_client_id_len,
                 "Longest client id accepted; longer ids get CONNACK 0x02")
      ->group(mq)->check(CLI::Range(1u, 65535u))->capture_default_str();
  app.add_option("--max-topic-levels", o.mqtt.max_topic_levels,
                 "Deepest topic or filter accepted (SUBACK 0x80, or close on PUBLISH)")
      ->group(mq)->check(CLI::Range(1u, 65535u))->capture_default_str();
  app.add_option("--connect-timeout", o.mqtt_connect_timeout_s,
                 "Seconds a new connection has to send CONNECT")
      ->group(mq)->check(CLI::Range(1u, 3600u))->capture_default_str();
  app.add_option("--sys-interval", o.mqtt_sys_interval_s,
                 "Seconds between $SYS/ statistics publications (0: off)")
      ->group(mq)->capture_default_str();
  app.add_option("--auth-user", o.mqtt_auth_users,
                 "NAME:PASSWORD accepted at CONNECT (repeatable; enables authentication)")
      ->group(mq);
  app.add_flag("--deny-anonymous", o.mqtt_deny_anonymous,
               "With --auth-user: refuse CONNECT without a user name (CONNACK 0x05)")
      ->group(mq);
  app.footer(
      "Exit codes: 0 clean shutdown, 64 bad usage, 69 cannot listen, 70 internal error.\n"
      "Signals: SIGTERM/SIGINT drain and exit 0.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (o.output_hard_limit < o.output_high_water) {
    std::fprintf(stderr, "--output-hard-limit must be at least --output-high-water\n");
    return kExitUsage;
  }
  for (const auto& u : o.mqtt_auth_users) {
    if (u.find(':') == std::string::npos || u.front() == ':') {
      std::fprintf(stderr, "--auth-user wants NAME:PASSWORD, got '%s'\n", u.c_str());
      return kExitUsage;
    }
  }
  o.mqtt.connect_timeout_ms = o.mqtt_connect_timeout_s * 1000;
  o.mqtt.sys_interval_ms = o.mqtt_sys_interval_s * 1000;
  return -1;
}

}  // namespace tcpms::app
