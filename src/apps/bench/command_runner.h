// Runs one shell command (`/bin/sh -c COMMAND`) without blocking the loop that asked for it:
// a thread spawns the child and waits for it, then hands its exit code and wall time to
// `on_done`. mqtt-reach's stream stage runs `tcpms-server --upgrade` this way while its
// clients keep streaming.
//
// The child's stdout goes to the bench's stderr (stdout carries the bench's JSON, and a worker
// process's result), and it inherits no descriptor above 2.
//
// Threads: construct, start and the destructor on one thread (a bench loop's); `on_done` runs
// once on the runner's own thread: post it to the loop.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace tcpms::benchapp {

struct CommandOutcome {
  // The exit status (0-255); 128 + N when killed by signal N; -1 when it could not be started.
  int exit_code = -1;
  uint64_t wall_ns = 0;  // spawn to exit (CLOCK_MONOTONIC)
  std::string error;     // why it could not be started
};

class CommandRunner {
 public:
  CommandRunner(std::string command, std::function<void(CommandOutcome)> on_done);
  // A command still running gets SIGTERM; then the thread is joined.
  ~CommandRunner();
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  void start();

 private:
  void run();

  const std::string command_;
  const std::function<void(CommandOutcome)> on_done_;
  std::atomic<pid_t> child_{0};  // while running
  std::thread thread_;
};

}  // namespace tcpms::benchapp
