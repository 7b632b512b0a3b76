// PROXY protocol headers (HAProxy, "The PROXY protocol", versions 1 and 2): what a load
// balancer puts in front of a connection to say where the client really came from.
//
// Pure functions over bytes: no sockets, no allocation. The engine (src/net/transport.cc)
// calls parse() on the first bytes of a connection accepted on a listener that asked for the
// header; a listener that did not ask never calls it, so a header sent there is just bytes of
// the protocol behind it (and is refused by that protocol), never trusted.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "tcpms/bytes.h"

namespace tcpms::proxy {

// The longest header we accept. v1 is at most 107 bytes by the spec. v2 allows 16 + 65535;
// addresses take at most 216 (AF_UNIX), and balancers add a few TLVs (ALPN, authority, unique
// id, TLS details), so 4 KiB leaves room for any real sender while bounding what a
// connection can make us hold before it has said anything.
inline constexpr size_t kMaxHeaderBytes = 16 + 4096;
inline constexpr size_t kV1MaxBytes = 107;
inline constexpr size_t kV2SignatureBytes = 12;
inline constexpr unsigned char kV2Signature[kV2SignatureBytes] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum class Status : uint8_t {
  kComplete,  // a whole header: `size` bytes, then the client's own bytes
  kNeedMore,  // a valid prefix of a header: read more
  kError,     // not a PROXY header, or a malformed one: close the connection
};

struct Header {
  size_t size = 0;       // bytes the header took, TLVs included
  uint8_t version = 0;   // 1 or 2
  // False for a v2 LOCAL command (a balancer's own health check), a v1 "UNKNOWN" or a v2
  // UNSPEC/UNIX family: the connection's real addresses stand.
  bool has_addresses = false;
  sockaddr_storage source{};       // AF_INET or AF_INET6, port set
  sockaddr_storage destination{};
};

struct Result {
  Status status = Status::kNeedMore;
  Header header;
  const char* error = "";  // static text for the log when status is kError
};

// Parses the header at the start of `data`.
Result parse(ByteView data) noexcept;

// Writes a header for `source` -> `destination` (both AF_INET or both AF_INET6) into `out`,
// which must hold kMaxHeaderBytes; returns its size, or 0 for families it cannot carry.
// For tests and the load generator.
size_t encode_v1(const sockaddr_storage& source, const sockaddr_storage& destination,
                 std::byte* out) noexcept;
size_t encode_v2(const sockaddr_storage& source, const sockaddr_storage& destination,
                 std::byte* out) noexcept;

}  // namespace tcpms::proxy
