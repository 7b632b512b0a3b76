// A forward iterator over a run of variable-length wire entries (properties, subscription
// entries). `Next` splits one entry off the front of the remaining bytes and returns false at
// the end or on bytes it cannot parse, so iteration is memory-safe on any input; on decoded
// packets the decoder has already validated every entry, so it never stops early.
#pragma once

#include <cstddef>
#include <iterator>

#include "mqtt/types.h"

namespace tcpms::mqtt {

template <class Entry, bool (*Next)(Bytes& rest, Entry& out) noexcept>
class CursorIterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = Entry;
  using difference_type = std::ptrdiff_t;
  using pointer = const Entry*;
  using reference = const Entry&;

  CursorIterator() = default;  // the end
  explicit CursorIterator(Bytes wire) noexcept : rest_(wire) { ++*this; }

  const Entry& operator*() const noexcept { return current_; }
  const Entry* operator->() const noexcept { return &current_; }
  CursorIterator& operator++() noexcept {
    done_ = !Next(rest_, current_);
    return *this;
  }
  CursorIterator operator++(int) noexcept {
    CursorIterator old = *this;
    ++*this;
    return old;
  }
  // Two live iterators are equal when they stand at the same byte.
  bool operator==(const CursorIterator& o) const noexcept {
    return done_ == o.done_ && (done_ || rest_.data() == o.rest_.data());
  }

 private:
  Bytes rest_;
  Entry current_{};
  bool done_ = true;
};

namespace detail {

// Splits "2-byte length, data, then `extra` bytes" off the front of `rest`.
inline bool split_prefixed(Bytes& rest, std::size_t extra, Bytes& data) noexcept {
  if (rest.size() < 2) return false;
  const std::size_t n = (static_cast<std::size_t>(rest[0]) << 8) | static_cast<std::size_t>(rest[1]);
  if (rest.size() < 2 + n + extra) return false;
  data = rest.subspan(2, n);
  return true;
}

}  // namespace detail
}  // namespace tcpms::mqtt
