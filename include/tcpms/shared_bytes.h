// SharedBytes: an immutable, reference-counted byte buffer. A publish fanned out to many
// subscribers (possibly on several loops) holds its payload once; each connection's output
// queue keeps a reference instead of a copy. The count is atomic because references cross
// loop threads; the bytes themselves are never written after construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "tcpms/bytes.h"

namespace tcpms {

class SharedBytes {
 public:
  SharedBytes() noexcept = default;
  static SharedBytes copy_of(ByteView data) {
    SharedBytes b = allocate(data.size());
    if (!data.empty()) std::memcpy(b.block_->data(), data.data(), data.size());
    return b;
  }
  // Allocates `size` bytes for the caller to fill once through mutable_data() before sharing.
  static SharedBytes allocate(size_t size) {
    void* mem = std::malloc(sizeof(Block) + size);
    if (mem == nullptr) throw std::bad_alloc();
    return SharedBytes(new (mem) Block(size));
  }

  SharedBytes(const SharedBytes& other) noexcept : block_(other.block_) { retain(); }
  SharedBytes(SharedBytes&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  SharedBytes& operator=(SharedBytes other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~SharedBytes() { release(); }

  ByteView view() const noexcept {
    return block_ ? ByteView{block_->data(), block_->size} : ByteView{};
  }
  std::byte* mutable_data() noexcept { return block_ ? block_->data() : nullptr; }
  size_t size() const noexcept { return block_ ? block_->size : 0; }
  // Bytes the block occupies (its header and data; the allocator adds a few of its own);
  // 0 without one.
  size_t footprint() const noexcept { return block_ ? sizeof(Block) + block_->size : 0; }
  bool empty() const noexcept { return size() == 0; }
  uint32_t use_count() const noexcept {
    return block_ ? block_->refs.load(std::memory_order_relaxed) : 0;
  }

 private:
  struct Block {
    explicit Block(size_t n) : size(n) {}
    std::atomic<uint32_t> refs{1};
    size_t size;
    std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  };
  explicit SharedBytes(Block* b) noexcept : block_(b) {}
  void retain() noexcept {
    if (block_) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept {
    if (block_ && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      block_->~Block();
      std::free(block_);
    }
    block_ = nullptr;
  }
  Block* block_ = nullptr;
};

}  // namespace tcpms
