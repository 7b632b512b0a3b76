// Output that the kernel has not taken yet. A connection owns an OutQueue only while it has
// unsent bytes; the loop gives it back (and its chunks to the pool) as soon as it drains.
//
// Bytes are held in two ways: copied into 16 KiB chunks from the loop's ChunkPool, or, for
// a large shared payload (a fanned-out publish), as a reference to the SharedBytes itself.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tcpms/bytes.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::net {

struct Chunk {
  static constexpr size_t kBytes = 16 * 1024 - 16;
  Chunk* next_free = nullptr;
  uint32_t used = 0;
  std::byte data[kBytes];
};

// Per-loop free list of chunks. Keeps at most `max_free` idle chunks; the rest go back to
// the allocator so a burst does not pin memory forever.
class ChunkPool {
 public:
  explicit ChunkPool(size_t max_free = 256) : max_free_(max_free) {}
  ~ChunkPool();
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  Chunk* get();
  void put(Chunk* c) noexcept;
  size_t in_use() const noexcept { return in_use_; }
  size_t idle() const noexcept { return free_count_; }

 private:
  Chunk* free_ = nullptr;
  size_t free_count_ = 0;
  size_t in_use_ = 0;
  size_t max_free_;
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
  bool empty() const noexcept { return bytes_ == 0; }

  // Fills up to `max` iovecs from the front; returns how many.
  int gather(iovec* iov, int max) const noexcept;
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
  ChunkPool* pool_;
};

}  // namespace tcpms::net
