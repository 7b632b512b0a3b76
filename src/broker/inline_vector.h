// InlineVector<T>: a vector that keeps its first element inline and moves to the heap only for
// a second one. Per-client structures use it where one element is the common case (a client's
// subscriptions, a filter's subscribers), so the common case costs no allocation.
// T must be trivially copyable. Not thread-aware: a plain value owned by one loop.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tcpms::broker {

template <typename T>
class InlineVector {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  InlineVector() noexcept = default;
  InlineVector(const InlineVector&) = delete;
  InlineVector& operator=(const InlineVector&) = delete;
  ~InlineVector() { free_heap(); }

  uint32_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T* data() noexcept { return cap_ > 1 ? u_.heap : &u_.one; }
  const T* data() const noexcept { return cap_ > 1 ? u_.heap : &u_.one; }
  T& operator[](uint32_t i) noexcept { return data()[i]; }
  const T& operator[](uint32_t i) const noexcept { return data()[i]; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }

  // Returns the new element's index.
  uint32_t push_back(const T& v) {
    if (size_ == cap_) reallocate(cap_ * 2);
    data()[size_] = v;
    return size_++;
  }
  // Moves the last element into `i` (order is not kept). True if an element moved.
  bool swap_remove(uint32_t i) noexcept {
    const bool moved = i != size_ - 1;
    if (moved) data()[i] = data()[size_ - 1];
    --size_;
    if (size_ <= 1 && cap_ > 1) {
      reallocate(1);  // back inline: a filter that once had many subscribers keeps nothing
    } else if (cap_ > 4 && size_ * 4 <= cap_) {
      reallocate(cap_ / 2);
    }
    return moved;
  }
  void clear() noexcept {
    free_heap();
    size_ = 0;
  }

 private:
  void free_heap() noexcept {
    if (cap_ > 1) delete[] u_.heap;
    cap_ = 1;
  }
  void reallocate(uint32_t cap) {
    T* dst = cap > 1 ? new T[cap] : nullptr;
    T tmp[1];
    if (dst == nullptr) dst = tmp;
    std::memcpy(static_cast<void*>(dst), static_cast<const void*>(data()), size_ * sizeof(T));
    free_heap();
    if (cap > 1) {
      u_.heap = dst;
      cap_ = cap;
    } else {
      if (size_ == 1) u_.one = tmp[0];
      cap_ = 1;
    }
  }
  union U {
    T one;
    T* heap;
    U() : one() {}
  } u_;
  uint32_t size_ = 0;
  uint32_t cap_ = 1;
};

}  // namespace tcpms::broker
