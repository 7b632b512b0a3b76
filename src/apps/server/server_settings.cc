#include "server_settings.h"

#include <spdlog/spdlog.h>

#include "broker/auth_http.h"
#include "config/table_array.h"
#include "store/sync_policy.h"

namespace tcpms::app {

void declare_listener(config::Settings& s, ListenerSettings& l) {
  s.add("bind", l.bind, "HOST:PORT to accept clients on (port 0: any free port)");
  s.add("proxy_protocol", l.proxy_protocol,
        "Connections start with a PROXY protocol v1 or v2 header (HAProxy send-proxy-v2); its "
        "client address is the one logs, limits, the login throttle and ACLs see. A connection "
        "without one is closed. Only for listeners behind a balancer you trust");
  s.add("websocket", l.websocket,
        "MQTT over WebSocket (RFC 6455, subprotocol mqtt): an HTTP Upgrade, then binary frames");
  s.add("websocket_path", l.websocket_path, "The WebSocket endpoint's path; others get 404")
      .check([](const std::string& v) -> std::string {
        return v.empty() || v.front() != '/' ? "must start with '/'" : "";
      });
  s.add("websocket_max_frame_bytes", l.websocket_max_frame_bytes,
        "Largest WebSocket data frame accepted (frames are streamed, not buffered); larger "
        "closes with 1009 (0: no limit beyond mqtt.max_packet_size on the MQTT bytes)");
  s.add("websocket_max_request_bytes", l.websocket_max_request_bytes,
        "Largest HTTP Upgrade request; larger gets 431")
      .range(uint64_t{256}, uint64_t{65536});
  s.add("max_connections", l.max_connections,
        "Connections on this listener in each process; more are accepted and closed at once, "
        "counted (0: only the server-wide max_connections)")
      .range(0, int64_t{1} << 40);
  s.add("handshake_timeout_ms", l.handshake_timeout_ms,
        "Time a new connection has for its PROXY header, TLS handshake and WebSocket upgrade "
        "together; then it is closed (counted)")
      .range(100u, 600000u);
  s.add("tls.cert_file", l.tls.cert_file,
        "PEM certificate chain (server certificate first); set, the listener speaks TLS 1.2/1.3. "
        "Re-read with the key on SIGHUP without dropping connections");
  s.add("tls.key_file", l.tls.key_file, "PEM private key of tls.cert_file");
  s.add("tls.ca_file", l.tls.ca_file, "PEM CA certificates that client certificates must chain to");
  s.add("tls.crl_file", l.tls.crl_file,
        "PEM certificate revocation list for client certificates (needs tls.ca_file; each "
        "issuing CA then needs a CRL)");
  s.add("tls.require_client_cert", l.tls.require_client_cert,
        "Mutual TLS: a client without a certificate valid for tls.ca_file fails the handshake");
  s.add("tls.request_client_cert", l.tls.request_client_cert,
        "Ask for a client certificate and verify one if given, but accept clients without");
  s.add("tls.identity_as_username", l.tls.identity_as_username,
        "The client certificate's identity (tls.identity_field) is the MQTT user name: no "
        "password is checked, ACLs apply to it (needs tls.require_client_cert)");
  s.add("tls.identity_field", l.tls.identity_field,
        "Which identity: the subject's CN, or the first DNS, email or URI subject alternative name")
      .one_of({"cn", "san"});
  s.add("tls.min_version", l.tls.min_version, "Oldest TLS version accepted").one_of({"1.2", "1.3"});
  s.add("tls.ciphers", l.tls.ciphers,
        "TLS 1.2 cipher list in OpenSSL's syntax (empty: ECDHE key exchange with AES-GCM and "
        "ChaCha20-Poly1305 only)");
  s.add("tls.ciphersuites", l.tls.ciphersuites,
        "TLS 1.3 cipher suites in OpenSSL's syntax (empty: OpenSSL's default)");
  s.add("tls.groups", l.tls.groups, "Key exchange groups (empty: X25519:P-256:P-384)");
  s.add("tls.session_tickets", l.tls.session_tickets,
        "Resume sessions with tickets (no per-client state on the server; the keys survive "
        "SIGHUP and are shared by worker processes)");
  s.add("tls.session_lifetime_s", l.tls.session_lifetime_s, "How long a ticket can resume a session")
      .range(60u, 604800u);
  s.add("tls.own_record_layer", l.tls.own_record_layer,
        "After a TLS 1.3 handshake keep only the traffic keys and seal/open records in tcpms, "
        "freeing OpenSSL's ~14 KB per connection (false: OpenSSL keeps every connection)");
  s.add_rule([&l] {
    if (l.bind.empty()) return "every [[listeners]] table needs bind = \"HOST:PORT\"";
    if (!l.tls.key_file.empty() && l.tls.cert_file.empty()) return "tls.key_file needs tls.cert_file";
    if (!l.tls.cert_file.empty() && l.tls.key_file.empty()) return "tls.cert_file needs tls.key_file";
    if (!l.has_tls() && (l.tls.require_client_cert || l.tls.request_client_cert ||
                         !l.tls.ca_file.empty()))
      return "client certificates need TLS: set tls.cert_file and tls.key_file";
    if ((l.tls.require_client_cert || l.tls.request_client_cert) && l.tls.ca_file.empty())
      return "client certificates need tls.ca_file to verify them against";
    if (l.tls.identity_as_username && !l.tls.require_client_cert)
      return "tls.identity_as_username needs tls.require_client_cert = true";
    return "";
  });
}

void declare_settings(config::Settings& s, ServerOptions& o) {
  s.add("protocol", o.protocol, "Protocol spoken on the listener").one_of({"mqtt", "echo"});
  s.add("listen", o.listen,
        "HOST:PORT to accept clients on (empty: 0.0.0.0:1883 for mqtt, 127.0.0.1:7000 for echo)");
  s.add_table_array<ListenerSettings>(
      "listeners", o.listeners,
      "More addresses to accept clients on, each with its own transport: TLS (tls.cert_file "
      "set), MQTT over WebSocket (websocket = true), a PROXY protocol header from a balancer "
      "(proxy_protocol = true), and limits. `listen` is the one-listener shorthand: with "
      "[[listeners]] tables it is used only when set explicitly. Certificate files are re-read "
      "on SIGHUP",
      declare_listener);
  s.add("threads", o.threads, "Event loops, one thread each (0: one per CPU)");
  s.add("processes", o.processes,
        "Worker processes sharing the port (SO_REUSEPORT), each with `threads` loops and its own "
        "descriptor limit; more than 1 adds a supervisor that restarts a worker that dies")
      .range(1u, 1000u);
  s.add("workers.session_fetch_timeout_ms", o.workers_session_fetch_timeout_ms,
        "With worker processes: how long a persistent CONNECT waits for its client id's home "
        "worker, and for the session another worker hands over, before it is refused with server "
        "unavailable (its session may be there; the client retries). Long enough for a "
        "million-client connect storm on a loaded box, where homes answer late (docs/upgrade.md). "
        "A clean CONNECT, which goes on without the answer, and a SUBACK waiting for every worker "
        "to confirm its filter wait at most 3 s of it")
      .range(100u, 600000u);
  s.add("max_connections", o.max_connections,
        "Connections held at once; more are accepted and closed at once (0: RLIMIT_NOFILE "
        "minus a reserve)")
      .range(0, int64_t{1} << 40);
  s.add("idle_timeout_s", o.idle_timeout_s,
        "Close a connection after this many seconds without input (0: never)")
      .alias("--idle-timeout");
  s.add("max_pending_logins", o.max_pending_logins,
        "Logins per loop the server may be working on at once (MQTT: a CONNECT received and "
        "not yet answered); past it the loop stops accepting until a quarter of them are "
        "through, and newcomers wait in the kernel's accept queue, where no deadline runs: a "
        "reconnect storm is served at the rate logins complete instead of being cut at the "
        "connect deadline. Silent sockets do not count (0: no limit)");
  s.add("port_wait_ms", o.port_wait_ms,
        "At start-up, how long to wait for a listening port (the admin port too) held by "
        "processes that are exiting: a server killed with -9 keeps its port until the kernel "
        "has closed all its sockets, seconds with many connections. A live process holding "
        "the port fails the start at once, naming it (0: never wait)")
      .range(0u, 600000u);
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
  s.add("log.format", o.log_format,
        "How log lines are written: text, or json (one object per line, for log shippers)")
      .one_of({"text", "json"});
  s.add("log.client_events_per_s", o.mqtt.client_log.lines_per_s,
        "Connect, disconnect and authentication-failure lines written per second at most (info "
        "level; past it they are counted and dropped, so a storm cannot fill the disk; 0: none)")
      .range(0.0, 1e6);
  s.add("log.client_events_burst", o.mqtt.client_log.burst,
        "Such lines written at once before log.client_events_per_s applies")
      .range(1.0, 1e9);
  s.add("drain.announce_ms", o.drain_announce_ms,
        "On SIGTERM/SIGINT, how long /readyz answers 503 while the listeners still accept, so "
        "a balancer polling it stops sending clients before they are refused (a second signal "
        "cuts it short)")
      .range(0u, 600000u)
      .live();
  s.add("pid_file", o.pid_file,
        "File the server writes its process id to at start-up (and the process that replaces "
        "it on SIGUSR2, once it has taken over); `tcpms-server --upgrade --pid-file F` signals it");
  s.add("upgrade.binary", o.upgrade_binary,
        "Program SIGUSR2 starts to take over the listeners and connections (empty: this "
        "server's own path as resolved at start-up, so a new binary installed there is the one "
        "started); it gets this server's command line");
  s.add("upgrade.timeout_ms", o.upgrade_timeout_ms,
        "How long the running server waits for each answer of the process taking over (its "
        "start, each batch); past it the handover stops and the running server keeps serving "
        "what was not taken. A new process that dies is seen at once (its socket closes): this "
        "bounds one that hangs, and must outlast the CPU waits of a busy box (seconds with a "
        "million clients on 2 cores)")
      .range(100u, 600000u);
  s.add("upgrade.batch", o.upgrade_batch,
        "Connections handed over per message (their descriptors travel together)")
      .range(1u, 250u);
  s.add("admin.listen", o.admin_listen, "HOST:PORT of the admin HTTP API and dashboard");
  s.add("admin.token", o.admin_token,
        "Bearer token the admin API requires (needed when it listens beyond loopback)");
  s.add("admin.disabled", o.no_admin, "Do not start the admin HTTP API").alias("--no-admin");
  s.add("admin.request_timeout_ms", o.admin_request_timeout_ms,
        "A request to the admin API must be complete within this long of the connection's "
        "opening or of the previous answer; slower connections are closed")
      .range(100u, 3600000u);
  s.add("admin.max_connections", o.admin_max_connections,
        "Admin API connections held at once; a new one past it closes the oldest that is "
        "still waiting for its request")
      .range(1u, 100000u);
  s.add("admin.max_connections_per_source", o.admin_max_connections_per_source,
        "Admin API connections from one address; a new one past it closes that address's "
        "oldest that is still waiting for its request")
      .range(1u, 100000u);

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
        "Bytes the QoS 1/2 messages of one session may hold, queued and in flight (payload, "
        "topic, properties and bookkeeping); past it new ones are dropped and counted (0: no "
        "byte bound)")
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
  s.add("mqtt.login_timeout_s", o.mqtt_login_timeout_s,
        "Seconds the server has to answer a CONNECT that arrived (authentication, the client "
        "id's claim, a session from elsewhere; each has a shorter bound of its own): a backstop "
        "for a login stuck for good, long enough that a busy server does not close logins it "
        "is still working on")
      .range(1u, 3600u)
      .alias("--login-timeout");
  s.add("mqtt.sys_interval_s", o.mqtt_sys_interval_s,
        "Seconds between $SYS/ statistics publications (0: off)")
      .alias("--sys-interval");
  s.add("mqtt.suback_waits_for_peers", m.suback_waits_for_peers,
        "With worker processes or a cluster: a SUBACK waits until every other process knows the "
        "new filter, so a message published anywhere after the SUBACK reaches the client (off: "
        "faster subscription storms, and a publish elsewhere just after a SUBACK can miss it)");
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
        "Failed logins per second one user may make from one address (IPv6: its /64) after "
        "its burst; more get CONNACK 0x05 without a password check, other users of the "
        "address are not affected (0: no throttle per user)")
      .range(0.0, 1e9);
  s.add("auth.login_failure_burst", o.auth_login_failure_burst,
        "Failed logins one user may make from one address at once before "
        "auth.login_failures_per_s applies")
      .range(1.0, 1e9);
  s.add("auth.login_failures_per_s_per_address", o.auth_login_failures_per_s_per_address,
        "Failed logins per second one address may make for all users together after its "
        "burst: the looser cap against guessing many users' passwords (0: none)")
      .range(0.0, 1e9);
  s.add("auth.login_failure_burst_per_address", o.auth_login_failure_burst_per_address,
        "Failed logins one address may make at once, all users together, before "
        "auth.login_failures_per_s_per_address applies")
      .range(1.0, 1e9);
  s.add("auth.http.url", o.auth_http_url,
        "http(s)://HOST:PORT/PATH of a service that authenticates CONNECTs and authorizes "
        "PUBLISH and SUBSCRIBE (a JSON POST answered {\"result\": \"allow\"} or \"deny\"; "
        "docs/auth.md). Empty: none")
      .check([](const std::string& url) -> std::string {
        std::string origin, path, error;
        if (url.empty() || broker::split_http_url(url, origin, path, &error)) return {};
        return error;
      })
      .alias("--auth-http-url");
  s.add("auth.http.token", o.auth_http_token,
        "Bearer token sent to the auth service (Authorization header); empty: none");
  s.add("auth.http.timeout_ms", o.auth_http_timeout_ms,
        "How long to wait for the auth service to connect, and then to answer; longer is a "
        "failure")
      .range(10u, 60000u);
  s.add("auth.http.allow_ttl_s", o.auth_http_allow_ttl_s,
        "Seconds an allow from the auth service is reused for the same question (0: not kept)")
      .range(0u, 86400u);
  s.add("auth.http.deny_ttl_s", o.auth_http_deny_ttl_s,
        "Seconds a deny from the auth service is reused for the same question (0: not kept)")
      .range(0u, 86400u);
  s.add("auth.http.cache_entries", o.auth_http_cache_entries,
        "Answers kept: for CONNECTs in all, and for PUBLISH/SUBSCRIBE per event loop (least "
        "recently used first out)")
      .range(uint64_t{1}, uint64_t{1} << 30);
  s.add("auth.http.failure_threshold", o.auth_http_failure_threshold,
        "Failures of the auth service in a row (timeouts, refused connections, bad answers) "
        "after which it is taken to be down and not asked (circuit breaker)")
      .range(1u, 1000000u);
  s.add("auth.http.retry_after_ms", o.auth_http_retry_after_ms,
        "How long the auth service is taken to be down before one request tries it again")
      .range(10u, 3600000u);
  s.add("auth.http.when_down", o.auth_http_when_down,
        "What answers while the auth service fails or is taken to be down: deny, or "
        "password_file (the password and ACL files decide, as without a service)")
      .one_of({"deny", "password_file"});
  s.add("auth.http.threads", o.auth_http_threads,
        "Requests to the auth service in flight at once (a thread and a keep-alive connection "
        "each)")
      .range(1u, 256u);
  s.add("auth.http.authorize", o.auth_http_authorize,
        "Ask the auth service about every PUBLISH topic and SUBSCRIBE filter too (answers "
        "cached per client and topic); false: it only authenticates CONNECTs");
  s.add_rule([&o] {
    if (!o.auth_http_url.empty() && !o.mqtt_auth_users.empty())
      return "auth.http.url and mqtt.auth_users (--auth-user) exclude each other";
    return "";
  });
  s.add("cluster.redis", o.cluster_redis,
        "redis://HOST:PORT through which this node routes to other tcpms nodes (docs/cluster.md; "
        "empty: a single node, no Redis)")
      .alias("--cluster");
  s.add("cluster.node_id", o.cluster_node_id,
        "This node's name in the cluster, unique among the nodes (empty: the host name)")
      .alias("--node-id");
  s.add("cluster.lease_s", o.cluster_lease_s,
        "Seconds a dead node stays a peer of the others (its lease key in Redis, refreshed every "
        "third of it)")
      .range(1u, 3600u);
  s.add("cluster.session_fetch_timeout_ms", o.cluster_session_fetch_timeout_ms,
        "How long a CONNECT waits for its client id's home node, and for the session a "
        "previous holder hands over, before going on without it (a session arriving later is "
        "kept only if the id has none here by then); also the longest a SUBACK waits for every "
        "node to confirm its new filter")
      .range(100u, 600000u);
  s.add("cluster.queue_frames", o.cluster_queue_frames,
        "Frames to other nodes that may wait for Redis. From 4096 waiting (or half of this, if "
        "smaller) this node's publishers wait (reading from them pauses, TCP pushes back) until "
        "the queue drains, so what crosses is not dropped; full, a frame is dropped and its "
        "node told everything again")
      .range(64u, 16777216u);
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
