// PendingInput: the bytes of a partial frame that a handler could not consume yet. Only a
// connection in the middle of a frame owns one; it is freed the moment it is consumed
// (nginx frees c->buffer on EAGAIN for the same reason: idle connections hold no buffer).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tcpms/bytes.h"

namespace tcpms::net {

struct PendingInput {
  uint32_t size = 0;
  uint32_t capacity = 0;
  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  ByteView view() noexcept { return {data(), size}; }
};

// Appends `bytes` to `*p`, creating or growing it. Returns false (and leaves `*p` unchanged)
// if that would pass `limit` bytes.
bool pending_append(PendingInput*& p, ByteView bytes, size_t limit);
// Drops `n` bytes from the front; frees the buffer (sets `p` to null) when it empties.
void pending_consume(PendingInput*& p, size_t n) noexcept;
void pending_free(PendingInput*& p) noexcept;

}  // namespace tcpms::net
