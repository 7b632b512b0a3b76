// SignalWatcher: main's view of process signals, through a signalfd it owns. Construct it in
// main before starting any thread, so every thread inherits the blocked mask and signals are
// only ever seen here, synchronously. SIGPIPE is ignored for the whole process (sends also
// use MSG_NOSIGNAL; this covers any other write path).
#pragma once

#include <initializer_list>

#include "tcpms/unique_fd.h"

namespace tcpms {

class SignalWatcher {
 public:
  explicit SignalWatcher(std::initializer_list<int> signals);
  int fd() const noexcept { return fd_.get(); }
  // Waits up to `timeout_ms` (-1: forever). Returns the signal number, or 0 on timeout.
  int wait(int timeout_ms);

 private:
  UniqueFd fd_;
};

}  // namespace tcpms
