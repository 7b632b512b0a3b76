// InterestRegion: the memory the peers' interest tables live in (remote_interest.h), and the
// lock that orders changes to them.
//
// Worker processes share one region. The supervisor maps it (MAP_SHARED) before it forks the
// workers, so every worker, a restarted one too, sees it at the same address; each worker
// writes only its own column of the tables and every worker reads them all. One copy then
// serves P workers, where each would otherwise keep its own copy of the others' columns:
// 1.25-2.5 bytes per client in every worker, 140 bytes per client with 56 workers (issue 15).
// A cluster node keeps the other nodes' columns in a private region of its own (MAP_PRIVATE),
// filled from their frames.
//
// Layout: a control block (the lock, the arena's cursor), the user's header (its fixed-size
// state, made once by the first process that asks), then the arena the tables come from. The
// arena is reserved up front with MAP_NORESERVE, so only the pages written cost memory. Blocks
// are handed out in order and never reused: a table replaced at another size gives its pages
// back (MADV_REMOVE when shared, MADV_DONTNEED when private) but stays mapped, so a reader still
// holding it reads zeros. Replacements are rare (sizes double), so the reservation lasts; when
// it is used up no table can be made and the user falls back (remote_interest.h: the peers
// concerned get every publish).
//
// The lock is a robust pthread mutex, process-shared in a shared region: a worker killed while
// holding it hands it to the next one, which carries on (what the dead worker half wrote is its
// own column, cleared when it starts again).
//
// Thread rules: everything from any thread of any process that maps the region; allocate() and
// give_back() under the lock.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace tcpms::routing {

class InterestRegion {
 public:
  enum class Sharing { kPrivate, kWithChildren };

  // Maps a region whose header has `header_bytes` and whose arena has up to `arena_bytes`
  // (less if the system refuses that much address space, down to 64 MiB). Null, with
  // `error` set, if it cannot be mapped at all.
  static std::unique_ptr<InterestRegion> create(Sharing sharing, size_t header_bytes,
                                                size_t arena_bytes, std::string* error);
  ~InterestRegion();
  InterestRegion(const InterestRegion&) = delete;
  InterestRegion& operator=(const InterestRegion&) = delete;

  bool shared() const noexcept { return sharing_ == Sharing::kWithChildren; }

  // The header; `init` runs on it once in the region's life, in the first process that asks
  // (under the lock; it must not take it again).
  void* header(const std::function<void(void*)>& init);

  // Holds the region's lock for its scope.
  class Lock {
   public:
    explicit Lock(InterestRegion& r);
    ~Lock();
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

   private:
    pthread_mutex_t* mu_;
  };

  // Page-aligned zeroed bytes from the arena, or null when it is used up. Under the lock.
  void* allocate(size_t bytes);
  // Gives the pages of [p, p + bytes) back to the system; they read as zeros afterwards.
  // `p` must be page-aligned. Under the lock.
  void give_back(void* p, size_t bytes);

 private:
  struct Control;
  InterestRegion(Sharing sharing, void* base, size_t mapped, size_t header_bytes);

  const Sharing sharing_;
  void* const base_;
  const size_t mapped_;
  Control* control_;
  char* header_;
  char* arena_;
  size_t arena_bytes_;
};

}  // namespace tcpms::routing
