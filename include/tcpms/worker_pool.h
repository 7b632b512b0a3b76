// WorkerPool: threads for blocking work (password hashing, file I/O) that must never run on
// a loop thread. A result comes back to the loop that asked, through its task queue.
// Thread-safe: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tcpms {

class EventLoop;

class WorkerPool {
 public:
  using Job = std::function<void()>;

  explicit WorkerPool(size_t threads);
  ~WorkerPool();  // finishes queued jobs, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(Job job);
  // Runs `work` on a worker thread, then `done` on `loop`'s thread. If `loop` has stopped by
  // then, `done` is dropped (its captures are destroyed on the worker).
  void offload(EventLoop& loop, Job work, Job done);
  size_t queued() const;
  size_t threads() const noexcept { return threads_.size(); }

 private:
  void run();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace tcpms
