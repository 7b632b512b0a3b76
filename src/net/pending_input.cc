#include "net/pending_input.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace tcpms::net {

bool pending_append(PendingInput*& p, ByteView bytes, size_t limit) {
  size_t have = p ? p->size : 0;
  size_t need = have + bytes.size();
  if (need > limit) return false;
  if (p == nullptr || need > p->capacity) {
    // Grow geometrically, starting near the request so a small tail stays small.
    size_t cap = std::max<size_t>(need, p ? size_t{p->capacity} * 2 : 64);
    cap = std::min(cap, limit);
    auto* grown = static_cast<PendingInput*>(std::realloc(p, sizeof(PendingInput) + cap));
    if (grown == nullptr) throw std::bad_alloc();
    if (p == nullptr) grown->size = 0;
    grown->capacity = static_cast<uint32_t>(cap);
    p = grown;
  }
  if (!bytes.empty()) std::memcpy(p->data() + p->size, bytes.data(), bytes.size());
  p->size = static_cast<uint32_t>(need);
  return true;
}

void pending_consume(PendingInput*& p, size_t n) noexcept {
  if (p == nullptr) return;
  if (n >= p->size) {
    pending_free(p);
    return;
  }
  std::memmove(p->data(), p->data() + n, p->size - n);
  p->size -= static_cast<uint32_t>(n);
}

void pending_free(PendingInput*& p) noexcept {
  std::free(p);
  p = nullptr;
}

}  // namespace tcpms::net
