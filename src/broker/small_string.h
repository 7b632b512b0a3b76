// SmallString: an immutable string of 24 bytes that keeps up to 22 characters inline, so a
// typical client id or topic level costs no allocation (std::string is 32 bytes and holds 15).
// Longer strings live in one malloc'd block. Not thread-aware: it is a plain value.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace tcpms::broker {

class SmallString {
 public:
  static constexpr size_t kInline = 22;

  SmallString() noexcept { clear_inline(); }
  explicit SmallString(std::string_view s) { assign(s); }
  SmallString(const SmallString& o) { assign(o.view()); }
  SmallString(SmallString&& o) noexcept {
    std::memcpy(raw_, o.raw_, sizeof raw_);
    o.clear_inline();
  }
  SmallString& operator=(const SmallString& o) {
    if (this != &o) {
      release();
      assign(o.view());
    }
    return *this;
  }
  SmallString& operator=(SmallString&& o) noexcept {
    if (this != &o) {
      release();
      std::memcpy(raw_, o.raw_, sizeof raw_);
      o.clear_inline();
    }
    return *this;
  }
  ~SmallString() { release(); }

  std::string_view view() const noexcept {
    if (is_heap()) {
      const char* p;
      uint32_t n;
      std::memcpy(&p, raw_, sizeof p);
      std::memcpy(&n, raw_ + 8, sizeof n);
      return {p, n};
    }
    return {raw_, static_cast<size_t>(raw_[23])};
  }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: a string is a view
  size_t size() const noexcept { return view().size(); }
  bool empty() const noexcept { return size() == 0; }
  bool is_heap() const noexcept { return static_cast<unsigned char>(raw_[23]) == kHeapTag; }
  // Bytes held outside the object (for memory accounting).
  size_t heap_bytes() const noexcept { return is_heap() ? size() : 0; }

 private:
  static constexpr unsigned char kHeapTag = 0xFF;
  void clear_inline() noexcept {
    std::memset(raw_, 0, sizeof raw_);
  }
  void assign(std::string_view s) {
    if (s.size() <= kInline) {
      std::memset(raw_, 0, sizeof raw_);
      if (!s.empty()) std::memcpy(raw_, s.data(), s.size());
      raw_[23] = static_cast<char>(s.size());
      return;
    }
    char* p = static_cast<char*>(std::malloc(s.size()));
    if (p == nullptr) throw std::bad_alloc();
    std::memcpy(p, s.data(), s.size());
    uint32_t n = static_cast<uint32_t>(s.size());
    std::memcpy(raw_, &p, sizeof p);
    std::memcpy(raw_ + 8, &n, sizeof n);
    raw_[23] = static_cast<char>(kHeapTag);
  }
  void release() noexcept {
    if (is_heap()) {
      char* p;
      std::memcpy(&p, raw_, sizeof p);
      std::free(p);
      clear_inline();
    }
  }
  alignas(8) char raw_[24];
};
static_assert(sizeof(SmallString) == 24);

}  // namespace tcpms::broker
