#include "workers/supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include <spdlog/spdlog.h>

namespace tcpms::workers {
namespace {

using Clock = std::chrono::steady_clock;

struct Slot {
  pid_t pid = 0;
  Clock::time_point started{};
  Clock::time_point restart_at{};  // when pid == 0 and not stopping
  std::chrono::milliseconds backoff{0};
  int last_status = 0;
  UniqueFd control;      // our end of the running worker's control socket
  bool retired = false;  // exited with retired_exit_code: never restarted
};

// Starts slot `index`'s worker with a fresh control socket (and `handover`, if any).
pid_t spawn(unsigned index, const WorkerMain& worker_main, pid_t supervisor,
            std::vector<Slot>& slots, UniqueFd handover, std::vector<UniqueFd>& other_handovers) {
  int pair[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return -1;
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid != 0) {  // parent (or -1)
    if (pid > 0) slots[index].control = std::move(ours);
    return pid;
  }
  // Child: die with the supervisor rather than linger holding the port.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != supervisor) std::_Exit(0);
  // The supervisor's ends of the other workers' sockets are not ours to hold: a worker
  // that dies must leave its socket closed (the supervisor reads that as its end).
  for (auto& s : slots) s.control.reset();
  for (auto& h : other_handovers) h.reset();  // the other workers' channels likewise
  ours.reset();
  int rc = worker_main(index, WorkerChannels{std::move(theirs), std::move(handover)});
  std::fflush(nullptr);
  std::_Exit(rc);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

int run_supervisor(const SupervisorConfig& config, const WorkerMain& worker_main,
                   SignalWatcher& signals, SupervisorUpgrade upgrade) {
  const pid_t self = ::getpid();
  std::vector<Slot> slots(config.processes);
  upgrade.first_handover_channels.resize(slots.size());
  for (unsigned i = 0; i < slots.size(); ++i) {
    slots[i].pid = spawn(i, worker_main, self, slots, std::move(upgrade.first_handover_channels[i]),
                         upgrade.first_handover_channels);
    slots[i].started = Clock::now();
    if (slots[i].pid < 0) {
      spdlog::critical("supervisor: fork failed for worker {}", i);
      for (auto& s : slots)
        if (s.pid > 0) ::kill(s.pid, SIGKILL);
      return 70;
    }
  }
  spdlog::info("supervisor {}: {} worker processes", self, slots.size());
  if (upgrade.after_first_start) upgrade.after_first_start();

  bool stopping = false;
  bool all_clean = true;
  int fatal_code = 0;  // a worker's exit code that stopped the server
  auto is_fatal = [&](int status) {
    if (!WIFEXITED(status)) return false;
    for (int code : config.fatal_exit_codes)
      if (code != 0 && WEXITSTATUS(status) == code) return true;
    return false;
  };
  Clock::time_point kill_at{};
  auto alive = [&] {
    return std::count_if(slots.begin(), slots.end(), [](const Slot& s) { return s.pid > 0; });
  };

  for (;;) {
    // Sleep until a signal, or the next restart / kill deadline.
    int timeout_ms = -1;
    auto now = Clock::now();
    auto consider = [&](Clock::time_point t) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count();
      ms = std::max<long long>(ms, 0);
      timeout_ms = timeout_ms < 0 ? static_cast<int>(ms) : std::min(timeout_ms, static_cast<int>(ms));
    };
    for (auto& s : slots)
      if (s.pid == 0 && !s.retired && !stopping) consider(s.restart_at);
    if (stopping) consider(kill_at);

    int sig = signals.wait(timeout_ms);
    now = Clock::now();
    if (sig == SIGUSR2 && !stopping) {
      auto refuse = [&](const std::string& why) {
        spdlog::error("supervisor: SIGUSR2: {}", why);
        if (upgrade.refused) upgrade.refused(why);
      };
      if (!upgrade.on_sigusr2) {
        refuse("this server cannot hand its workers over (logged above why); nothing changed, "
               "the workers keep serving");
      } else if (std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.retired; })) {
        refuse("some workers were handed over already (an earlier upgrade stopped halfway); "
               "ignored, the others keep serving");
      } else {
        std::vector<pid_t> pids;
        std::vector<int> controls;
        for (auto& s : slots) {
          pids.push_back(s.pid);
          controls.push_back(s.pid > 0 ? s.control.get() : -1);
        }
        upgrade.on_sigusr2(pids, controls);
      }
      now = Clock::now();
    }
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      if (sig == SIGHUP && !stopping) {
        spdlog::info("supervisor: SIGHUP, forwarding to workers");
      } else if (!stopping) {
        stopping = true;
        kill_at = now + config.stop_timeout;
        spdlog::info("supervisor: {}, draining {} workers", strsignal(sig), alive());
      }
      for (auto& s : slots)
        if (s.pid > 0) ::kill(s.pid, sig == SIGHUP ? SIGHUP : SIGTERM);
    }
    // Reap every child that ended (SIGCHLD coalesces).
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (unsigned i = 0; i < slots.size(); ++i) {
        Slot& s = slots[i];
        if (s.pid != pid) continue;
        s.pid = 0;
        s.control.reset();
        s.last_status = status;
        if (WIFEXITED(status) && WEXITSTATUS(status) == config.retired_exit_code) {
          s.retired = true;
          spdlog::info("supervisor: worker {} (pid {}) retired (upgrade handover)", i, pid);
          break;
        }
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (stopping) {
          if (!clean) all_clean = false;
          spdlog::info("supervisor: worker {} (pid {}) {}", i, pid, describe(status));
          break;
        }
        if (is_fatal(status)) {
          fatal_code = WEXITSTATUS(status);
          stopping = true;
          all_clean = false;
          kill_at = now + config.stop_timeout;
          spdlog::critical("supervisor: worker {} (pid {}) {}: it cannot start, so no worker "
                           "could; stopping the server", i, pid, describe(status));
          for (auto& other : slots)
            if (other.pid > 0) ::kill(other.pid, SIGTERM);
          break;
        }
        bool crashed_fast = now - s.started < config.crash_window;
        s.backoff = crashed_fast
                        ? std::min(config.max_backoff,
                                   std::max(std::chrono::milliseconds(100), s.backoff * 2))
                        : std::chrono::milliseconds(0);
        s.restart_at = now + s.backoff;
        spdlog::warn("supervisor: worker {} (pid {}) {}; restarting in {} ms", i, pid,
                     describe(status), s.backoff.count());
        break;
      }
    }
    if (std::all_of(slots.begin(), slots.end(), [](const Slot& s) { return s.retired; })) {
      spdlog::info("supervisor {}: every worker retired; exiting", self);
      return 0;
    }
    if (stopping) {
      if (alive() == 0) return fatal_code != 0 ? fatal_code : all_clean ? 0 : 1;
      if (now >= kill_at) {
        spdlog::error("supervisor: workers did not stop in time; killing them");
        for (auto& s : slots)
          if (s.pid > 0) ::kill(s.pid, SIGKILL);
        all_clean = false;
        kill_at = now + std::chrono::seconds(5);
      }
      continue;
    }
    for (unsigned i = 0; i < slots.size(); ++i) {
      Slot& s = slots[i];
      if (s.pid != 0 || s.retired || now < s.restart_at) continue;
      s.pid = spawn(i, worker_main, self, slots, UniqueFd(), upgrade.first_handover_channels);
      s.started = now;
      if (s.pid < 0) {
        s.pid = 0;
        s.restart_at = now + std::chrono::seconds(1);
        spdlog::error("supervisor: fork failed for worker {}; retrying", i);
      }
    }
  }
}

}  // namespace tcpms::workers
