#include "upgrade_command.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
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
  // What is there is from an earlier SIGUSR2: the server answers this one anew.
  ::unlink(upgrade_outcome_path(opt.pid_file).c_str());
  if (::kill(old_pid, SIGUSR2) != 0) {
    std::fprintf(stderr, "tcpms-server --upgrade: cannot signal pid %d: %s\n", old_pid,
                 net::errno_text(errno).c_str());
    return kExitUsage;
  }
  // Each step of the handover has upgrade.timeout_ms and a new process that dies is seen at
  // once, so the running server answers well within this; the bound is for one that hangs.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt.upgrade_timeout_ms) * 6;
  std::optional<std::chrono::steady_clock::time_point> gone_since;
  while (std::chrono::steady_clock::now() < until) {
    const pid_t now = read_pid_file(opt.pid_file);
    if (now > 0 && now != old_pid) {
      std::printf("upgraded: pid %d took over from pid %d\n", now, old_pid);
      return 0;
    }
    if (auto why = read_upgrade_refusal(opt.pid_file)) {
      std::fprintf(stderr, "tcpms-server --upgrade: pid %d did not hand over: %s\n", old_pid, why->c_str());
      return 1;
    }
    // The old process may exit just before its successor writes the pid file: a moment's grace.
    if (!gone_since && ::kill(old_pid, 0) != 0 && errno == ESRCH) gone_since = std::chrono::steady_clock::now();
    if (gone_since && std::chrono::steady_clock::now() - *gone_since > std::chrono::seconds(2)) {
      std::fprintf(stderr, "tcpms-server --upgrade: pid %d exited and no new process wrote %s\n",
                   old_pid, opt.pid_file.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "tcpms-server --upgrade: no new process took over from pid %d within %u ms; "
                       "it keeps serving (its log says why)\n", old_pid, opt.upgrade_timeout_ms * 6);
  return 1;
}

}  // namespace tcpms::app
