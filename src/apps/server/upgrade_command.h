// `tcpms-server --upgrade --pid-file F`: the operator's front end to SIGUSR2 (docs/upgrade.md).
#pragma once

#include "server_options.h"

namespace tcpms::app {

// Signals the server whose pid is in opt.pid_file and waits until another pid is written
// there (the new process took over). 0: upgraded; 1: not (the running server says why in its
// log); 64: no usable pid file.
int signal_upgrade(const ServerOptions& opt);

}  // namespace tcpms::app
