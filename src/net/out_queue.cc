#include "net/out_queue.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace tcpms::net {

ChunkPool::~ChunkPool() {
  shed(large_, 0);
  shed(small_, 0);
}

size_t ChunkPool::shed(FreeList& list, size_t keep) noexcept {
  size_t freed = 0;
  while (list.count > keep && list.head != nullptr) {
    Chunk* next = list.head->next_free;
    release(list.head);
    list.head = next;
    --list.count;
    ++freed;
  }
  return freed;
}

size_t ChunkPool::shed_unused(size_t keep_large, size_t keep_small) noexcept {
  size_t freed = 0;
  for (auto [list, keep] : {std::pair{&large_, keep_large}, std::pair{&small_, keep_small}}) {
    // The chunks idle the whole time are surplus; those in use since are not.
    const size_t surplus = list->low_water > keep ? list->low_water - keep : 0;
    freed += shed(*list, list->count - std::min(surplus, list->count));
    list->low_water = list->count;
  }
  return freed;
}

void ChunkPool::release(Chunk* c) noexcept { ::operator delete(c); }

Chunk* ChunkPool::get_from(FreeList& list, size_t capacity) {
  ++in_use_;
  if (list.head == nullptr) {
    auto* c = new (::operator new(sizeof(Chunk) + capacity)) Chunk;
    c->capacity = static_cast<uint32_t>(capacity);
    return c;
  }
  Chunk* c = list.head;
  list.head = c->next_free;
  --list.count;
  list.low_water = std::min(list.low_water, list.count);
  c->next_free = nullptr;
  c->used = 0;
  return c;
}

void ChunkPool::put(Chunk* c) noexcept {
  --in_use_;
  FreeList& list = c->capacity == Chunk::kSmallBytes ? small_ : large_;
  if (list.count >= list.max) {
    release(c);
    return;
  }
  c->next_free = list.head;
  list.head = c;
  ++list.count;
}

void OutQueue::append(ByteView data) {
  bytes_ += data.size();
  while (!data.empty()) {
    Segment* tail = segments_.size() > head_ ? &segments_.back() : nullptr;
    if (tail == nullptr || tail->chunk == nullptr || tail->chunk->used == tail->chunk->capacity) {
      // A piece that fits a small chunk gets one, whatever came before it (a header between
      // two shared payloads must not take 16 KiB).
      Chunk* fresh = data.size() <= Chunk::kSmallBytes ? pool_->get_small() : pool_->get();
      footprint_ += fresh->capacity;
      segments_.push_back(Segment{fresh, {}, 0, 0});
      tail = &segments_.back();
    }
    Chunk* c = tail->chunk;
    size_t n = std::min<size_t>(data.size(), c->capacity - c->used);
    std::memcpy(c->data() + c->used, data.data(), n);
    c->used += static_cast<uint32_t>(n);
    tail->end = c->used;
    data = data.subspan(n);
  }
}

void OutQueue::append_shared(const SharedBytes& body, size_t offset) {
  ByteView rest = body.view().subspan(offset);
  if (rest.size() <= kShareThreshold) {
    append(rest);
    return;
  }
  bytes_ += rest.size();
  footprint_ += rest.size();
  segments_.push_back(Segment{nullptr, body, static_cast<uint32_t>(offset),
                              static_cast<uint32_t>(body.size())});
}

void OutQueue::copy_to(std::string& out) const {
  out.reserve(out.size() + bytes_);
  for (size_t i = head_; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    const std::byte* base = s.chunk ? s.chunk->data() : s.shared.view().data();
    out.append(reinterpret_cast<const char*>(base + s.begin), s.end - s.begin);
  }
}

int OutQueue::gather(iovec* iov, int max) const noexcept {
  int n = 0;
  for (size_t i = head_; i < segments_.size() && n < max; ++i) {
    const Segment& s = segments_[i];
    const std::byte* base = s.chunk ? s.chunk->data() : s.shared.view().data();
    iov[n].iov_base = const_cast<std::byte*>(base + s.begin);
    iov[n].iov_len = s.end - s.begin;
    ++n;
  }
  return n;
}

void OutQueue::consume(size_t n) noexcept {
  bytes_ -= std::min(n, bytes_);
  while (n > 0 && head_ < segments_.size()) {
    Segment& s = segments_[head_];
    size_t len = s.end - s.begin;
    if (n < len) {
      s.begin += static_cast<uint32_t>(n);
      if (s.chunk == nullptr) footprint_ -= n;  // shared: counted by what is left to send
      return;
    }
    n -= len;
    footprint_ -= s.chunk ? s.chunk->capacity : len;
    if (s.chunk) pool_->put(s.chunk);
    s = Segment{};
    ++head_;
  }
  if (head_ == segments_.size()) {
    segments_.clear();
    head_ = 0;
  } else if (head_ > 32 && head_ * 2 > segments_.size()) {
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
}

void OutQueue::clear() noexcept {
  for (size_t i = head_; i < segments_.size(); ++i) {
    if (segments_[i].chunk) pool_->put(segments_[i].chunk);
  }
  segments_.clear();
  // A queue that held a deep backlog goes back to the per-loop cache small.
  if (segments_.capacity() > 64) std::vector<Segment>().swap(segments_);
  head_ = 0;
  bytes_ = 0;
  footprint_ = 0;
}

}  // namespace tcpms::net
