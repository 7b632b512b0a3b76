// Who holds a TCP port, and waiting for a killed holder to let go of it.
//
// Why: after `kill -9` the kernel closes a process's descriptors one by one; with many
// connections that takes seconds (4.7-10.3 s for 200,000 at once: docs/benchmarks.md), and
// the dead process's listener holds the port until then. A server restarted at once must
// not fail for that, nor share the port with a live server by accident (SO_REUSEPORT would
// let any process of the same uid in). So a taken port is waited for while its holders are
// exiting or invisible, for a bounded time, and refused at once when a live process has it.
// Plain functions; any thread may call them (they block: start-up only).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tcpms/endpoint.h"

namespace tcpms::net {

struct PortHolder {
  pid_t pid = 0;         // 0: no process we may read has the socket open
  std::string name;      // the process's comm
  bool exiting = false;  // killed or dying: SIGKILL pending, PF_EXITING, or a zombie
};

struct PortHolders {
  bool listening = false;         // a socket listens on the port (/proc/net/tcp, tcp6)
  uid_t uid = 0;                  // the listening socket's owner, when `listening`
  std::vector<PortHolder> found;  // processes with it open (others' only when we are root)

  bool any_live() const;
  // "pid 812 (tcpms-server)", "pid 812 (tcpms-server, exiting)", or what is known without one.
  std::string describe() const;
};

// The processes holding a listening TCP socket on `port`, from /proc.
PortHolders find_port_holders(uint16_t port);

// probe_port_free(at), but while the port is taken by processes that are exiting (or that
// this user cannot see), tries again every 50 ms for up to `patience`, with one log line
// when the wait starts. Returns 0 or the errno of the last try; on EADDRINUSE `holder` names
// who has the port, for the error message.
int wait_port_free(const Endpoint& at, std::chrono::milliseconds patience, std::string& holder);

}  // namespace tcpms::net
