#include "options.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace tcpms::benchapp {

void add_common_options(CLI::App& cmd, CommonOptions& opt) {
  cmd.add_option("--target", opt.targets,
                 "Server address HOST:PORT, or a port range HOST:PORT-PORT; repeatable. "
                 "Connections are spread over all of them")
      ->required()
      ->take_all();
  cmd.add_option("--source-ips", opt.source_ips,
                 "Source addresses to bind before connect: a range 127.0.0.2-127.0.0.250 or a "
                 "comma list. Default: for loopback targets, enough 127.x addresses that no "
                 "(source, target) pair carries more than 4,000 connections (a fuller pair makes connect() search longer for a free port)");
  cmd.add_option("--connections,-n", opt.connections,
                 "Connections to open (connect, echo; default 1000); total connect cycles (churn; "
                 "default 0: no cap, --duration ends it)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--rate", opt.rate,
                 "New connections per second over all processes (0: as fast as --max-pending "
                 "allows)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--max-pending", opt.max_pending,
                 "Connects in flight at once (split over processes and threads)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--connect-timeout", opt.connect_timeout_s, "Seconds before a connect counts as failed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--reply-timeout", opt.reply_timeout_s,
                 "Seconds to wait for an echo (ping, churn round trip, echo drain)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--duration", opt.duration_s, "Seconds of the measured phase (echo, churn)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--max-time", opt.max_time_s,
                 "Hard stop: seconds after which the run ends whatever it is doing")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--threads", opt.threads, "Event loops per process")
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  cmd.add_option("--processes", opt.processes,
                 "Worker processes (0: as many as RLIMIT_NOFILE needs; 1 runs in this process)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  cmd.add_flag("--json", opt.json, "Print the result as JSON on stdout (the summary goes to stderr)");
  cmd.add_option("--report", opt.report_path, "Write a self-contained HTML report to this file");
  cmd.add_option("--server-pid", opt.server_pid,
                 "Sample this process (and its children): RSS and CPU before, during and after");
  cmd.add_flag("--no-progress", opt.no_progress, "No live progress line even on a terminal");
  cmd.add_flag("--tls", opt.tls, "Connect with TLS (handshakes on the bench's loops)");
  cmd.add_option("--tls-ca-file", opt.tls_ca_file,
                 "Verify the server's certificate against these CAs (default: no verification)");
  cmd.add_option("--tls-cert-file", opt.tls_cert_file, "Client certificate for mutual TLS (PEM)");
  cmd.add_option("--tls-key-file", opt.tls_key_file, "Its private key (PEM)");
  cmd.add_option("--tls-version", opt.tls_version, "Highest TLS version to offer: 1.2 or 1.3")
      ->check(CLI::IsMember({"1.2", "1.3"}));
  cmd.add_flag("!--no-tls-resume", opt.tls_resume,
               "Full handshakes only: never offer a session ticket (default: resume when one is "
               "held, so all connections but the first few are resumed)");
  cmd.add_option("--tls-server-name", opt.tls_server_name, "SNI and the name verified")
      ->capture_default_str();
  cmd.add_flag("--websocket", opt.websocket,
               "MQTT over WebSocket: an HTTP Upgrade, then masked binary frames (with --tls: wss)");
  cmd.add_option("--ws-path", opt.ws_path, "The WebSocket path")->capture_default_str();
  // Hidden: how the parent starts its workers (fork+exec of itself).
  cmd.add_option("--worker-index", opt.worker_index)->group("");
  cmd.add_option("--worker-count", opt.worker_count)->group("");
}

std::string validate(const CommonOptions& opt) {
  if (opt.is_worker() && (opt.worker_index < 0 || opt.worker_index >= opt.worker_count))
    return "--worker-index must be in [0, --worker-count)";
  if (!opt.tls && (!opt.tls_ca_file.empty() || !opt.tls_cert_file.empty() || !opt.tls_version.empty()))
    return "--tls-ca-file, --tls-cert-file and --tls-version need --tls";
  if (opt.processes > 1 && opt.connections > 0 && opt.processes > opt.connections)
    return "--processes is larger than --connections";
  return {};
}

nlohmann::json common_parameters(const CommonOptions& opt) {
  nlohmann::json j = {{"targets", opt.targets},
                      {"connections", opt.connections},
                      {"rate", opt.rate},
                      {"max_pending", opt.max_pending},
                      {"threads", opt.threads},
                      {"connect_timeout_s", opt.connect_timeout_s},
                      {"duration_s", opt.duration_s},
                      {"max_time_s", opt.max_time_s}};
  if (!opt.source_ips.empty()) j["source_ips"] = opt.source_ips;
  if (opt.tls) j["tls"] = {{"version", opt.tls_version.empty() ? "highest" : opt.tls_version},
                           {"resume", opt.tls_resume}, {"client_cert", !opt.tls_cert_file.empty()}};
  if (opt.websocket) j["websocket"] = opt.ws_path;
  if (opt.server_pid) j["server_pid"] = opt.server_pid;
  return j;
}

}  // namespace tcpms::benchapp
