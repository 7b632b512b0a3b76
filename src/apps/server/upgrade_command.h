// `tcpms-server --upgrade --pid-file F`: the operator's front end to SIGUSR2 (docs/upgrade.md).
#pragma once

#include "server_options.h"

namespace tcpms::app {

// Signals the server whose pid is in opt.pid_file and waits until another pid is written
// there (the new process took over), or until the running server writes why it did not
// (write_upgrade_refusal), or exits without a successor. 0: upgraded; 1: not (printed, and
// the running server's log says more); 64: no usable pid file.
int signal_upgrade(const ServerOptions& opt);

}  // namespace tcpms::app
