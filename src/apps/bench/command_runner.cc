#include "command_runner.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "driver_base.h"

extern char** environ;

namespace tcpms::benchapp {
namespace {

// posix_spawn's file actions as a value that cleans up after itself.
class FileActions {
 public:
  FileActions() { ::posix_spawn_file_actions_init(&a_); }
  ~FileActions() { ::posix_spawn_file_actions_destroy(&a_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() noexcept { return &a_; }

 private:
  posix_spawn_file_actions_t a_;
};

}  // namespace

CommandRunner::CommandRunner(std::string command, std::function<void(CommandOutcome)> on_done)
    : command_(std::move(command)), on_done_(std::move(on_done)) {}

CommandRunner::~CommandRunner() {
  if (const pid_t pid = child_.load(); pid > 0) ::kill(pid, SIGTERM);
  if (thread_.joinable()) thread_.join();
}

void CommandRunner::start() { thread_ = std::thread([this] { run(); }); }

void CommandRunner::run() {
  CommandOutcome out;
  FileActions actions;
  ::posix_spawn_file_actions_adddup2(actions.get(), STDERR_FILENO, STDOUT_FILENO);
  ::posix_spawn_file_actions_addclosefrom_np(actions.get(), STDERR_FILENO + 1);
  char sh[] = "/bin/sh", dash_c[] = "-c";
  std::string cmd = command_;
  char* argv[] = {sh, dash_c, cmd.data(), nullptr};
  const uint64_t t0 = monotonic_ns();
  pid_t pid = 0;
  if (int err = ::posix_spawn(&pid, sh, actions.get(), nullptr, argv, environ); err != 0) {
    out.error = fmt::format("posix_spawn /bin/sh: {}", std::strerror(err));
    on_done_(std::move(out));
    return;
  }
  child_.store(pid);
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  child_.store(0);
  out.wall_ns = monotonic_ns() - t0;
  if (r < 0) {
    out.error = fmt::format("waitpid: {}", std::strerror(errno));
  } else if (WIFEXITED(status)) {
    out.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.exit_code = 128 + WTERMSIG(status);
  }
  on_done_(std::move(out));
}

}  // namespace tcpms::benchapp
