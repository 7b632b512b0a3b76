#include "server_options.h"

#include <CLI/CLI.hpp>

#include "config/settings.h"
#include "server_settings.h"

namespace tcpms::app {

int parse_server_options(int argc, char** argv, ServerOptions& o, config::Settings& settings) {
  declare_settings(settings, o);
  CLI::App app{"tcpms-server: a TCP message server for very many persistent connections"};
  app.set_version_flag("--version", "tcpms 0.1.0");
  app.footer(
      "Every setting can also be given in a TOML file (--config FILE; see tcpms.toml); a flag "
      "overrides the file.\n"
      "Exit codes: 0 clean shutdown, 64 bad usage or configuration, 69 cannot listen, "
      "70 internal error.\n"
      "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP re-reads the configuration file; "
      "SIGUSR2 hands the listeners and connections to a new server process (docs/upgrade.md).");
  app.add_flag("--upgrade", o.upgrade,
               "Send SIGUSR2 to the server whose pid is in --pid-file, wait until the process "
               "that replaces it has written its pid there, and exit (0: upgraded, 1: not)");
  int rc = settings.parse_command_line(app, argc, argv);
  if (rc >= 0) return rc == 0 ? kExitOk : kExitUsage;
  finish_server_options(o);
  return -1;
}

void finish_server_options(ServerOptions& o) {
  o.mqtt.connect_timeout_ms = o.mqtt_connect_timeout_s * 1000;
  o.mqtt.login_timeout_ms = o.mqtt_login_timeout_s * 1000;
  o.mqtt.sys_interval_ms = o.mqtt_sys_interval_s * 1000;
  o.mqtt.client_log.json = o.log_format == "json";
}

}  // namespace tcpms::app
