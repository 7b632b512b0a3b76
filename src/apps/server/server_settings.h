// The settings of tcpms-server, declared once for tcpms::config: each becomes a TOML key, a
// command-line flag (plus the older flag spellings as aliases) and a line of the example
// tcpms.toml, which tests/unit/config checks against these declarations.
#pragma once

#include "config/settings.h"
#include "server_options.h"  // src/apps/server

namespace tcpms::app {

void declare_settings(config::Settings& settings, ServerOptions& opt);
// The keys of one [[listeners]] table.
void declare_listener(config::Settings& settings, ListenerSettings& listener);

}  // namespace tcpms::app
