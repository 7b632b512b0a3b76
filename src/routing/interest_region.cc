#include "routing/interest_region.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include <spdlog/spdlog.h>

namespace tcpms::routing {

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kSmallestArena = size_t{64} << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

struct InterestRegion::Control {
  pthread_mutex_t mu;
  size_t arena_used = 0;   // under mu
  bool header_made = false;  // under mu
};

std::unique_ptr<InterestRegion> InterestRegion::create(Sharing sharing, size_t header_bytes,
                                                       size_t arena_bytes, std::string* error) {
  const size_t head = round_up(sizeof(Control), kPage) + round_up(header_bytes, kPage);
  const int flags = MAP_ANONYMOUS | MAP_NORESERVE |
                    (sharing == Sharing::kWithChildren ? MAP_SHARED : MAP_PRIVATE);
  // Less address space if the system will not give that much (a strict overcommit policy).
  arena_bytes = round_up(std::max(arena_bytes, kSmallestArena), kPage);
  void* base = MAP_FAILED;
  int err = 0;
  for (size_t arena = arena_bytes; base == MAP_FAILED && arena >= kSmallestArena; arena /= 2) {
    base = ::mmap(nullptr, head + arena, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (base == MAP_FAILED) err = errno;
    else arena_bytes = arena;
  }
  if (base == MAP_FAILED) {
    if (error) *error = std::string("interest region: mmap: ") + std::strerror(err);
    return nullptr;
  }
  auto region = std::unique_ptr<InterestRegion>(
      new InterestRegion(sharing, base, head + arena_bytes, header_bytes));
  Control* c = new (base) Control();
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (sharing == Sharing::kWithChildren) pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&c->mu, &attr);
  pthread_mutexattr_destroy(&attr);
  region->control_ = c;
  return region;
}

InterestRegion::InterestRegion(Sharing sharing, void* base, size_t mapped, size_t header_bytes)
    : sharing_(sharing),
      base_(base),
      mapped_(mapped),
      control_(nullptr),
      header_(static_cast<char*>(base) + round_up(sizeof(Control), kPage)),
      arena_(header_ + round_up(header_bytes, kPage)),
      arena_bytes_(mapped - static_cast<size_t>(arena_ - static_cast<char*>(base))) {}

InterestRegion::~InterestRegion() {
  // The mutex is not destroyed: in a shared region the other processes may still use it.
  ::munmap(base_, mapped_);
}

InterestRegion::Lock::Lock(InterestRegion& r) : mu_(&r.control_->mu) {
  if (pthread_mutex_lock(mu_) == EOWNERDEAD) {
    spdlog::warn("routing: a worker died while changing the interest tables; carrying on "
                 "(its column is cleared when it starts again)");
    pthread_mutex_consistent(mu_);
  }
}

InterestRegion::Lock::~Lock() { pthread_mutex_unlock(mu_); }

void* InterestRegion::header(const std::function<void(void*)>& init) {
  Lock lock(*this);
  if (!control_->header_made) {
    init(header_);
    control_->header_made = true;
  }
  return header_;
}

void* InterestRegion::allocate(size_t bytes) {
  bytes = round_up(bytes, kPage);
  if (bytes > arena_bytes_ - control_->arena_used) return nullptr;
  void* p = arena_ + control_->arena_used;
  control_->arena_used += bytes;
  return p;
}

void InterestRegion::give_back(void* p, size_t bytes) {
  // Shared anonymous pages are shmem: only MADV_REMOVE frees them.
  ::madvise(p, round_up(bytes, kPage), shared() ? MADV_REMOVE : MADV_DONTNEED);
}

}  // namespace tcpms::routing
