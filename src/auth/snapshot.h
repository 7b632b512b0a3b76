// Snapshot<T>: the current immutable T (a loaded password file or ACL), swapped atomically on
// reload (SIGHUP) while other threads keep using the one they already hold.
//
//   Snapshot<PasswordDb> users(load_password_file(path).value());
//   users.load()->verify(...);              // any thread
//   users.store(new_db);                    // the reloading thread; old readers finish on the old db
//
// A hot path (every PUBLISH on a loop thread) should not bump one shared refcount from every
// core: SnapshotReader caches the shared_ptr and only re-loads when the generation changes
// (one acquire load of a counter per call; the lock only when it changed).
// Thread rules: Snapshot is safe from any thread. A SnapshotReader belongs to one thread
// (one per loop); it must not outlive its Snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace tcpms::auth {

template <class T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const T> initial) : current_(std::move(initial)) {}
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  std::shared_ptr<const T> load() const {
    std::lock_guard lock(mu_);
    return current_;
  }
  void store(std::shared_ptr<const T> next) {
    {
      std::lock_guard lock(mu_);
      current_.swap(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
    // `next` (the old T) is released here, outside the lock, if this was its last holder.
  }
  // Bumped after every store(): a reader that sees a new generation then load()s the new T.
  uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

 private:
  // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12's version unlocks a load with
  // memory_order_relaxed, which ThreadSanitizer reports as a race with the next store. The
  // lock is taken once per reload per reader (SnapshotReader), never per check.
  mutable std::mutex mu_;
  std::shared_ptr<const T> current_;
  std::atomic<uint64_t> generation_{0};
};

template <class T>
class SnapshotReader {
 public:
  explicit SnapshotReader(const Snapshot<T>& source)
      : source_(&source), generation_(source.generation()), cached_(source.load()) {}

  // Valid until the next get() on this reader.
  const T* get() {
    uint64_t g = source_->generation();
    if (g != generation_) {
      cached_ = source_->load();
      generation_ = g;
    }
    return cached_.get();
  }

 private:
  const Snapshot<T>* source_;
  uint64_t generation_;
  std::shared_ptr<const T> cached_;
};

}  // namespace tcpms::auth
