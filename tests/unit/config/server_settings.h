// The settings of tcpms-server, declared for tcpms::config. A DRAFT for the server's owner:
// src/apps/server owns its settings, and this function is meant to move into
// src/apps/server/server_options.cc (replacing the hand-written CLI11 options there), after
// which the example_config test compiles that file instead of this one. Until then it keeps
// the committed tcpms.toml generated from declarations that match ServerOptions today.
#pragma once

#include "config/settings.h"
#include "server_options.h"  // src/apps/server

namespace tcpms::app {

void declare_settings(config::Settings& settings, ServerOptions& opt);

}  // namespace tcpms::app
