// Everything tcpms-server can be told, with its defaults. Parsed from the command line
// (CLI11); see --help.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "broker/config.h"
#include "tcpms/tls.h"

namespace tcpms::config {
class Settings;
}

namespace tcpms::app {

// One [[listeners]] table: an address with its own transport and limits (docs/config.md,
// "Listeners").
struct ListenerSettings {
  std::string bind;
  bool proxy_protocol = false;
  bool websocket = false;
  std::string websocket_path = "/mqtt";
  uint64_t websocket_max_frame_bytes = 0;
  uint64_t websocket_max_request_bytes = 8192;
  int64_t max_connections = 0;
  uint32_t handshake_timeout_ms = 10000;
  TlsServerSettings tls;  // TLS when tls.cert_file is set

  bool has_tls() const noexcept { return !tls.cert_file.empty(); }
};

struct ServerOptions {
  std::string protocol = "mqtt";
  std::string listen;                    // default depends on the protocol (mqtt 1883, echo 7000)
  std::vector<ListenerSettings> listeners;  // [[listeners]]: more addresses and transports
  std::string admin_listen = "127.0.0.1:8080";
  std::string admin_token;
  unsigned threads = 0;                  // 0: one per CPU
  unsigned processes = 1;                // >1: a supervisor and that many worker processes
  int64_t max_connections = 0;           // 0: derived from RLIMIT_NOFILE
  uint32_t idle_timeout_s = 0;           // 0: none
  uint32_t max_pending_logins = 1000;    // per loop; LoopConfig::max_admitting
  uint32_t drain_timeout_ms = 5000;
  uint32_t port_wait_ms = 30000;         // a port held by a killed server still closing its sockets
  uint64_t output_high_water = 1 << 20;
  uint64_t output_hard_limit = 64 << 20;
  std::string log_level = "info";
  std::string log_format = "text";       // or "json": one JSON object per line
  bool no_admin = false;
  uint32_t admin_request_timeout_ms = 10000;
  uint32_t admin_max_connections = 256;
  uint32_t admin_max_connections_per_source = 32;
  uint32_t drain_announce_ms = 2000;     // SIGTERM: /readyz 503 and still accepting, this long
  // The upgrade handover (SIGUSR2; docs/upgrade.md).
  std::string pid_file;                  // written at start-up (by the new process after a handover)
  std::string upgrade_binary;            // empty: this binary's path as resolved at start-up
  uint32_t upgrade_timeout_ms = 60000;   // each answer the new process owes
  uint32_t upgrade_batch = 200;          // connections per batch (one SCM_RIGHTS message)
  bool upgrade = false;                  // --upgrade: signal the server in pid_file and exit
  // MQTT (--protocol mqtt)
  broker::BrokerConfig mqtt;
  uint32_t mqtt_connect_timeout_s = 10;
  uint32_t mqtt_login_timeout_s = 60;
  uint32_t mqtt_sys_interval_s = 10;
  std::vector<std::string> mqtt_auth_users;  // NAME:PASSWORD (a stand-in for tests)
  // auth.*: password and ACL files (docs/auth.md). Anonymous clients: allowed without a
  // password file, refused with one, unless allow_anonymous or deny_anonymous says otherwise.
  std::string auth_password_file;
  std::string auth_acl_file;
  bool auth_allow_anonymous = false;
  bool mqtt_deny_anonymous = false;
  double auth_login_failures_per_s = 0.2;   // per (user, address)
  double auth_login_failure_burst = 10;
  double auth_login_failures_per_s_per_address = 1;
  double auth_login_failure_burst_per_address = 100;
  // auth.http.*: an HTTP service that authenticates and authorizes (broker/auth_http.h).
  std::string auth_http_url;
  std::string auth_http_token;
  uint32_t auth_http_timeout_ms = 2000;
  uint32_t auth_http_allow_ttl_s = 60;
  uint32_t auth_http_deny_ttl_s = 10;
  uint64_t auth_http_cache_entries = 100000;
  uint32_t auth_http_failure_threshold = 5;
  uint32_t auth_http_retry_after_ms = 5000;
  std::string auth_http_when_down = "deny";  // or "password_file"
  uint32_t auth_http_threads = 8;
  bool auth_http_authorize = true;
  // Worker processes (processes > 1): a CONNECT's wait for its id's home worker and session.
  uint32_t workers_session_fetch_timeout_ms = 10000;
  // Cluster of nodes through Redis (src/cluster); empty redis: a single node, no Redis.
  std::string cluster_redis;
  std::string cluster_node_id;
  uint32_t cluster_lease_s = 5;
  uint32_t cluster_session_fetch_timeout_ms = 3000;  // a CONNECT's wait for its session elsewhere
  uint32_t cluster_queue_frames = 65536;  // frames waiting for Redis; publishers wait past half
  // Persistence (src/store, docs/persistence.md); empty dir: off (everything in memory).
  std::string persistence_dir;
  std::string persistence_sync = "every-message";
  std::string persistence_on_damage = "salvage";
};

// Exit codes scripts can rely on.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 64,       // bad flags (EX_USAGE)
  kExitUnavailable = 69, // could not bind / start (EX_UNAVAILABLE)
  kExitSoftware = 70,    // internal error (EX_SOFTWARE)
  kExitRetired = 75,     // a worker process done for good: it handed over (supervisor.h)
};

// Declares the settings (server_settings.cc) bound to `out`, then reads --config FILE and the
// flags. Returns -1 to continue, or an exit code (after --help, --check-config, or a usage or
// configuration error already printed). `settings` stays bound to `out` for SIGHUP reloads.
int parse_server_options(int argc, char** argv, ServerOptions& out, config::Settings& settings);
// Derived values (milliseconds from seconds); call after parsing and after every reload.
void finish_server_options(ServerOptions& out);

}  // namespace tcpms::app
