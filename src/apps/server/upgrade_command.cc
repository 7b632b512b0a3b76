#include "upgrade_command.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "net/socket.h"
#include "successor.h"

namespace tcpms::app {

int signal_upgrade(const ServerOptions& opt) {
  if (opt.pid_file.empty()) {
    std::fprintf(stderr, "tcpms-server --upgrade: say which server with --pid-file FILE\n");
    return kExitUsage;
  }
  const pid_t old_pid = read_pid_file(opt.pid_file);
  if (old_pid <= 0) {
    std::fprintf(stderr, "tcpms-server --upgrade: %s holds no pid\n", opt.pid_file.c_str());
    return kExitUsage;
  }
  if (::kill(old_pid, SIGUSR2) != 0) {
    std::fprintf(stderr, "tcpms-server --upgrade: cannot signal pid %d: %s\n", old_pid,
                 net::errno_text(errno).c_str());
    return kExitUsage;
  }
  // Each step of the handover has upgrade.timeout_ms; the whole of it a few of them plus the
  // batches, which go at thousands per second.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt.upgrade_timeout_ms) * 6;
  while (std::chrono::steady_clock::now() < until) {
    const pid_t now = read_pid_file(opt.pid_file);
    if (now > 0 && now != old_pid) {
      std::printf("upgraded: pid %d took over from pid %d\n", now, old_pid);
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "tcpms-server --upgrade: no new process took over from pid %d; it keeps "
                       "serving (its log says why)\n", old_pid);
  return 1;
}

}  // namespace tcpms::app
