#include "net/task_queue.h"

#include <sys/eventfd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace tcpms::net {

TaskQueue::TaskQueue() : wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!wake_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

bool TaskQueue::push(Task task) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    wake = pending_.empty();
    pending_.push_back(std::move(task));
  }
  if (wake) {
    uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is already due to wake.
    [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
  }
  return true;
}

size_t TaskQueue::run_all() {
  uint64_t drained;
  [[maybe_unused]] ssize_t n = ::read(wake_fd_.get(), &drained, sizeof drained);
  {
    std::lock_guard lock(mu_);
    running_.swap(pending_);
  }
  size_t count = running_.size();
  for (auto& task : running_) task();
  running_.clear();
  return count;
}

void TaskQueue::close() {
  std::vector<Task> dropped;
  std::lock_guard lock(mu_);
  closed_ = true;
  dropped.swap(pending_);
}

bool TaskQueue::empty() const {
  std::lock_guard lock(mu_);
  return pending_.empty();
}

}  // namespace tcpms::net
