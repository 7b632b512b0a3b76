#include "server_options.h"

#include <CLI/CLI.hpp>

namespace tcpms::app {

int parse_server_options(int argc, char** argv, ServerOptions& o) {
  CLI::App app{"tcpms-server: a TCP message server for very many persistent connections"};
  app.set_version_flag("--version", "tcpms 0.1.0");
  app.add_option("--protocol", o.protocol, "Protocol on the listener")
      ->check(CLI::IsMember({"echo"}))
      ->capture_default_str();
  app.add_option("--listen", o.listen, "HOST:PORT to accept clients on (echo: 127.0.0.1:7000)");
  app.add_option("--admin-listen", o.admin_listen, "HOST:PORT of the admin HTTP API")
      ->capture_default_str();
  app.add_option("--admin-token", o.admin_token,
                 "Bearer token the admin API requires (needed when it listens beyond loopback)");
  app.add_flag("--no-admin", o.no_admin, "Do not start the admin HTTP API");
  app.add_option("--threads", o.threads, "Event loops (0: one per CPU)")->capture_default_str();
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
  return -1;
}

}  // namespace tcpms::app
