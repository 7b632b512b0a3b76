#include "successor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "net/socket.h"

extern char** environ;

namespace tcpms::app {

std::string own_binary_path() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

Successor start_successor(const std::string& binary, const std::vector<std::string>& argv) {
  Successor s;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    s.error = "socketpair: " + net::errno_text(errno);
    return s;
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  // Everything the child needs is built before fork: between fork and exec only
  // async-signal-safe calls are allowed (this process has threads).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, kHandoverFdVariable, std::strlen(kHandoverFdVariable)) != 0)
      env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kHandoverFdVariable) + "=" + std::to_string(theirs.get()));
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  const int child_fd = theirs.get();
  pid_t pid = ::fork();
  if (pid < 0) {
    s.error = "fork: " + net::errno_text(errno);
    return s;
  }
  if (pid == 0) {
    // Keep only the child's end across exec; start with no signal blocked (the server's
    // SignalWatcher blocks its own), and the default actions for the ignored ones.
    ::fcntl(child_fd, F_SETFD, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(binary.c_str(), argp.data(), envp.data());
    ::_exit(127);
  }
  s.pid = pid;
  s.channel = std::move(ours);
  return s;  // `theirs` closes here: only the child holds that end now
}

std::string stop_successor(pid_t pid) {
  int status = 0;
  pid_t ended = 0;
  for (int i = 0; i < 100 && (ended = ::waitpid(pid, &status, WNOHANG)) == 0; ++i) ::usleep(10000);
  std::string how;
  if (ended == 0) {
    ::kill(pid, SIGKILL);
    ended = ::waitpid(pid, &status, 0);
    how = "did not exit by itself and was killed";
  } else if (ended == pid && WIFEXITED(status)) {
    how = "exited with code " + std::to_string(WEXITSTATUS(status));
  } else if (ended == pid && WIFSIGNALED(status)) {
    how = "ended by signal " + std::to_string(WTERMSIG(status));
  } else {
    how = "ended";
  }
  return how;
}

std::optional<UniqueFd> handover_socket_from_environment(std::string& error) {
  const char* v = std::getenv(kHandoverFdVariable);
  if (v == nullptr) return std::nullopt;
  char* end = nullptr;
  long fd = std::strtol(v, &end, 10);
  ::unsetenv(kHandoverFdVariable);
  if (end == v || *end != '\0' || fd < 3 || fd > 1 << 20) {
    error = std::string(kHandoverFdVariable) + " is not a descriptor number";
    return std::nullopt;
  }
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    error = std::string(kHandoverFdVariable) + "=" + v + " is not a stream socket";
    return std::nullopt;
  }
  ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return UniqueFd(static_cast<int>(fd));
}

namespace {

bool write_whole(const std::string& path, const std::string& text, std::string& error) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text << '\n';
    if (!f) {
      error = "cannot write " + tmp;
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + tmp + " to " + path + ": " + net::errno_text(errno);
    return false;
  }
  return true;
}

}  // namespace

bool write_pid_file(const std::string& path, pid_t pid, std::string& error) {
  return write_whole(path, std::to_string(pid), error);
}

pid_t read_pid_file(const std::string& path) {
  std::ifstream f(path);
  long pid = 0;
  if (!(f >> pid) || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

std::string upgrade_outcome_path(const std::string& pid_file) { return pid_file + ".upgrade"; }

void write_upgrade_refusal(const std::string& pid_file, const std::string& why) {
  if (pid_file.empty()) return;
  std::string error;
  if (!write_whole(upgrade_outcome_path(pid_file), why, error)) spdlog::error("pid_file: {}", error);
}

std::optional<std::string> read_upgrade_refusal(const std::string& pid_file) {
  std::ifstream f(upgrade_outcome_path(pid_file));
  std::string line;
  if (!std::getline(f, line) || line.empty()) return std::nullopt;
  return line;
}

}  // namespace tcpms::app
