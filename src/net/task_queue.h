// TaskQueue: how other threads hand work to a loop. A mutex-guarded vector that the loop
// swaps out and runs outside the lock (muduo's doPendingFunctors), plus an eventfd that wakes
// the loop's epoll_wait. The eventfd is written only when the queue goes from empty to
// non-empty, so a burst of posts costs one wake-up.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "tcpms/unique_fd.h"

namespace tcpms::net {

class TaskQueue {
 public:
  using Task = std::function<void()>;

  TaskQueue();  // throws std::system_error if the eventfd cannot be created
  int wake_fd() const noexcept { return wake_fd_.get(); }

  // Any thread. False once closed.
  bool push(Task task);
  // Loop thread: runs everything queued so far; returns how many ran.
  size_t run_all();
  // Loop thread: after close(), push() fails and pending tasks are dropped.
  void close();
  bool empty() const;

 private:
  mutable std::mutex mu_;
  std::vector<Task> pending_;  // guarded by mu_
  bool closed_ = false;        // guarded by mu_
  std::vector<Task> running_;  // loop thread only
  UniqueFd wake_fd_;
};

}  // namespace tcpms::net
