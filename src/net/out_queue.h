// Output that the kernel has not taken yet. A connection owns an OutQueue only while it has
// unsent bytes; the loop gives it back (and its chunks to the pool) as soon as it drains.
//
// Bytes are held in two ways: copied into 16 KiB chunks from the loop's ChunkPool, or, for
// a large shared payload (a fanned-out publish), as a reference to the SharedBytes itself.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tcpms/bytes.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::net {

// A chunk of queued output. Two sizes: a fan-out enqueues a small message (header and a
// short payload) for thousands of subscribers in one loop iteration, and a 16 KiB chunk each
// would ask the allocator for megabytes per publish; so a queue starts with a small chunk
// when the first append fits one, and continues with large ones.
struct Chunk {
  static constexpr size_t kBytes = 16 * 1024 - 24;    // large
  static constexpr size_t kSmallBytes = 1024 - 24;    // small
  Chunk* next_free = nullptr;
  uint32_t used = 0;
  uint32_t capacity = 0;
  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};
static_assert(sizeof(Chunk) == 16);

// Per-loop free lists of chunks, one per size. Each keeps a bounded number of idle chunks;
// the rest go back to the allocator so a burst does not pin memory forever.
class ChunkPool {
 public:
  explicit ChunkPool(size_t max_free = 256, size_t max_free_small = 8192)
      : large_{nullptr, 0, max_free}, small_{nullptr, 0, max_free_small} {}
  ~ChunkPool();
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  Chunk* get() { return get_from(large_, Chunk::kBytes); }
  Chunk* get_small() { return get_from(small_, Chunk::kSmallBytes); }
  void put(Chunk* c) noexcept;
  size_t in_use() const noexcept { return in_use_; }
  size_t idle() const noexcept { return large_.count + small_.count; }
  // Frees the idle chunks that no get() needed since the last call (the fewest idle since
  // then), keeping `keep_large` / `keep_small` of each. A burst fills the pool to its bounds
  // (up to 12 MiB a loop) and without this it kept them for good, in every worker process;
  // a pool in steady use keeps what it cycles. Returns how many chunks it freed.
  size_t shed_unused(size_t keep_large, size_t keep_small) noexcept;

 private:
  struct FreeList {
    Chunk* head;
    size_t count;
    size_t max;
    size_t low_water = 0;  // fewest idle chunks since the last shed_unused
  };
  static size_t shed(FreeList& list, size_t keep) noexcept;
  Chunk* get_from(FreeList& list, size_t capacity);
  static void release(Chunk* c) noexcept;

  FreeList large_;
  FreeList small_;
  size_t in_use_ = 0;
};

class OutQueue {
 public:
  // Payloads at or below this size are copied: a reference is not worth its bookkeeping.
  static constexpr size_t kShareThreshold = 1024;

  explicit OutQueue(ChunkPool& pool) : pool_(&pool) {}
  ~OutQueue() { clear(); }
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  void append(ByteView data);
  // Appends `body[offset..]` by reference (or by copy when small).
  void append_shared(const SharedBytes& body, size_t offset = 0);

  size_t bytes() const noexcept { return bytes_; }
  // Memory this queue holds: chunk capacities plus referenced shared payloads (what the
  // engine's output limits are checked against).
  size_t footprint() const noexcept { return footprint_; }
  bool empty() const noexcept { return bytes_ == 0; }

  // Fills up to `max` iovecs from the front; returns how many.
  int gather(iovec* iov, int max) const noexcept;
  // Appends every unsent byte to `out` (a connection moving to another process).
  void copy_to(std::string& out) const;
  // Drops `n` bytes from the front (after a successful write).
  void consume(size_t n) noexcept;
  void clear() noexcept;

 private:
  struct Segment {
    Chunk* chunk = nullptr;  // owned chunk, or
    SharedBytes shared;      // a shared payload
    uint32_t begin = 0;      // first unsent byte
    uint32_t end = 0;        // one past the last byte
  };

  std::vector<Segment> segments_;
  size_t head_ = 0;  // first live segment; the vector is compacted when it drains
  size_t bytes_ = 0;
  size_t footprint_ = 0;
  ChunkPool* pool_;
};

}  // namespace tcpms::net
