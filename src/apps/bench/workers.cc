#include "workers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tcpms/unique_fd.h"

namespace tcpms::benchapp {
namespace {

using Clock = std::chrono::steady_clock;

bool write_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void write_line(const nlohmann::json& j) {
  write_all(kWorkerResultFd, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

// Blocks until the parent closes our stdin (or the wait is cut short by a signal or timeout).
void wait_for_release(int signal_fd, int timeout_s) {
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  char buf[256];
  while (Clock::now() < deadline) {
    pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (::poll(p, 2, 200) < 0 && errno != EINTR) return;
    if (p[1].revents & POLLIN) return;
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) return;
    }
  }
}

struct Child {
  pid_t pid = -1;
  UniqueFd out;  // its fd 3, our read end
  UniqueFd in;   // its stdin, our write end
  std::string buffer;
  LiveTotals live;
  std::optional<bench::RunResult> result;
  bool eof = false;
};

Child spawn(const std::vector<std::string>& argv, int index, int count) {
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0)
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  std::vector<std::string> args = argv;
  args.insert(args.end(), {"--worker-index", std::to_string(index), "--worker-count", std::to_string(count)});
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec. dup2 clears O_CLOEXEC on the copy.
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], kWorkerResultFd);
    ::execv("/proc/self/exe", cargs.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  Child c;
  c.pid = pid;
  c.out.reset(out[0]);
  c.in.reset(in[1]);
  ::fcntl(c.out.get(), F_SETFL, O_NONBLOCK);
  return c;
}

void take_lines(Child& c, int index) {
  size_t start = 0;
  for (size_t nl; (nl = c.buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    try {
      auto j = nlohmann::json::parse(c.buffer.begin() + static_cast<std::ptrdiff_t>(start),
                                     c.buffer.begin() + static_cast<std::ptrdiff_t>(nl));
      if (auto p = j.find("progress"); p != j.end()) {
        c.live.open = p->value("open", int64_t{0});
        c.live.established = p->value("established", int64_t{0});
        c.live.ops = p->value("ops", int64_t{0});
        c.live.errors = p->value("errors", int64_t{0});
        c.live.done = p->value("done", false);
      } else if (auto r = j.find("result"); r != j.end()) {
        c.result = r->get<bench::RunResult>();
        c.live.done = true;
      }
    } catch (const std::exception& e) {
      spdlog::error("worker {}: unreadable line ({})", index, e.what());
    }
  }
  c.buffer.erase(0, start);
}

}  // namespace

int run_worker(Workload& workload, const CommonOptions& opt, const TargetPlan& plan, int signal_fd) {
  const Share share = split_share(workload.whole_share(opt), opt.worker_count, opt.worker_index);
  RunHooks hooks;
  hooks.on_progress = [](const LiveTotals& t) {
    write_line({{"progress",
                 {{"open", t.open}, {"established", t.established}, {"ops", t.ops}, {"errors", t.errors},
                  {"done", t.done}}}});
  };
  hooks.before_teardown = [&](bench::RunResult& r) {
    write_line({{"result", r}});
    // The parent samples the server now; hold the connections until it says so.
    wait_for_release(signal_fd, static_cast<int>(opt.max_time_s) + 120);
  };
  run_local(workload, opt, plan, share, signal_fd, hooks);
  return 0;
}

// How long the other workers may run on after one ended with failures.
constexpr double kStopOthersAfterS = 10;

bench::RunResult run_workers(const CommonOptions& opt, const std::vector<std::string>& argv,
                             int processes, int signal_fd, const ParentHooks& hooks) {
  std::vector<Child> children;
  children.reserve(static_cast<size_t>(processes));
  for (int i = 0; i < processes; ++i) children.push_back(spawn(argv, i, processes));

  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  size_t next_second = 1;
  double next_progress = 0.25;
  bool killed = false;
  double failed_at = -1;  // when a worker first ended with failures (s into the run)
  bool stopped_others = false;
  for (;;) {
    std::vector<pollfd> fds;
    for (auto& c : children) fds.push_back({c.eof ? -1 : c.out.get(), POLLIN, 0});
    fds.push_back({signal_fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 50);
    if (fds.back().revents & POLLIN) {
      wait_signal(signal_fd, 0);
      // Workers on the same terminal got it too; this covers a signal sent to the parent only.
      for (auto& c : children) ::kill(c.pid, SIGINT);
    }
    for (size_t i = 0; i < children.size(); ++i) {
      Child& c = children[i];
      if (c.eof || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      for (;;) {
        ssize_t n = ::read(c.out.get(), buf, sizeof buf);
        if (n > 0) {
          c.buffer.append(buf, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) c.eof = true;
        break;
      }
      take_lines(c, static_cast<int>(i));
    }
    const double now = elapsed();
    while (now >= static_cast<double>(next_second)) {
      if (hooks.on_second) hooks.on_second(next_second - 1);
      ++next_second;
    }
    if (hooks.on_progress && now >= next_progress) {
      LiveTotals t;
      t.elapsed_s = now;
      t.done = true;
      for (const auto& c : children) {
        t.open += c.live.open;
        t.established += c.live.established;
        t.ops += c.live.ops;
        t.errors += c.live.errors;
        t.done = t.done && c.live.done;
      }
      hooks.on_progress(t);
      next_progress = now + 0.25;
    }
    bool all = true;
    for (const auto& c : children) all = all && (c.result || c.eof);
    if (all) break;
    // A worker that ended with failures while others run has failed the run, and the others
    // may be waiting for it at a rendezvous it will never reach (mqtt-reach: a loop whose
    // control connection died cannot tell them the command ended): they are stopped as by
    // Ctrl-C, with what they measured, a while after rather than at --max-time.
    if (failed_at < 0) {
      for (const auto& c : children)
        if (c.result && c.result->failure_total() > 0) failed_at = now;
    } else if (!stopped_others && now - failed_at > kStopOthersAfterS) {
      spdlog::warn("a worker ended with failures {:.0f} s ago: stopping the others", now - failed_at);
      for (auto& c : children)
        if (!c.result) ::kill(c.pid, SIGINT);
      stopped_others = true;
    }
    // Workers stop themselves at --max-time; this is for one that hangs.
    if (!killed && now > opt.max_time_s + 30) {
      spdlog::error("workers still running {:.0f} s past --max-time: killing them", now - opt.max_time_s);
      for (auto& c : children) {
        if (!c.result) ::kill(c.pid, SIGKILL);
      }
      killed = true;
    }
  }

  if (hooks.before_release) hooks.before_release();
  std::vector<bench::RunResult> results;
  int lost = 0;
  for (auto& c : children) {
    c.in.reset();  // EOF on the worker's stdin: it closes its connections and exits
    if (c.result) {
      results.push_back(std::move(*c.result));
    } else {
      ++lost;
    }
  }
  for (auto& c : children) {
    int status = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (::waitpid(c.pid, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(c.pid, SIGKILL);
        ::waitpid(c.pid, &status, 0);
        break;
      }
      ::usleep(10000);
    }
  }
  bench::RunResult merged = bench::merge_results(results);
  if (lost > 0) merged.add_failure("worker_lost", lost);
  return merged;
}

}  // namespace tcpms::benchapp
