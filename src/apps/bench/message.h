// The bytes the bench sends to an echo server and checks on the way back. A message is a
// 16-byte header {connection number u32, sequence u32, timestamp ns u64} (host byte order: the
// same process reads it back) followed by a pattern derived from (connection, sequence, offset),
// so every echoed byte can be checked without keeping a copy of what was sent.
//
// Threads: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "tcpms/bytes.h"

namespace tcpms::benchapp {

inline constexpr size_t kMessageHeaderBytes = 16;

// Fills `out` (at least kMessageHeaderBytes long) with message (`conn`, `seq`) stamped `t_ns`.
void write_message(MutableByteView out, uint32_t conn, uint32_t seq, uint64_t t_ns) noexcept;

// The stamp of `in` if it is exactly message (`conn`, `seq`) as write_message made it (every
// byte), else nullopt.
std::optional<uint64_t> check_message(ByteView in, uint32_t conn, uint32_t seq) noexcept;

}  // namespace tcpms::benchapp
