// The WebSocket opening handshake (RFC 6455 section 4): the client's HTTP/1.1 Upgrade request
// and the server's answer, both sides. Pure functions over bytes; the views returned point
// into the request.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "tcpms/bytes.h"
#include "websocket/frame.h"

namespace tcpms::ws {

inline constexpr size_t kDefaultMaxRequestBytes = 8192;
// Room for any response written below (an error's text included).
inline constexpr size_t kMaxResponseBytes = 512;

struct ServerPolicy {
  std::string_view path = "/mqtt";  // compared with the request target before any '?'
  // Subprotocols we speak, best first. A client offering some picks the first of ours it
  // offers; offering only others is refused (400); offering none is accepted without one.
  std::span<const std::string_view> subprotocols;
  size_t max_request_bytes = kDefaultMaxRequestBytes;
};

struct UpgradeResult {
  Status status = Status::kNeedMore;
  size_t size = 0;                // request bytes, blank line included
  std::string_view key;           // Sec-WebSocket-Key
  std::string_view subprotocol;   // chosen from the policy's list; empty: none offered
  std::string_view path;          // the request target
  std::string_view origin;        // for logs; browsers always send it
  int http_status = 0;            // on error: 400, 404, 405, 426, 431 or 505
  const char* what = "";
};

// Parses an Upgrade request at the start of `data` and decides on it.
UpgradeResult parse_upgrade(ByteView data, const ServerPolicy& policy) noexcept;

// base64(SHA-1(key + the RFC's GUID)): 28 characters.
void accept_key(std::string_view key, char out[28]) noexcept;

// "HTTP/1.1 101 Switching Protocols" with Sec-WebSocket-Accept (and the subprotocol when one
// was chosen). Returns the size written into `out` (kMaxResponseBytes).
size_t write_accept(char* out, std::string_view key, std::string_view subprotocol) noexcept;
// A refusal with a short text body and "Connection: close" (426 also names the version we
// speak, 405 the method). Returns the size written into `out` (kMaxResponseBytes).
size_t write_refusal(char* out, int http_status, std::string_view what) noexcept;

// --- the client side (load generator, tests) ------------------------------------------------

// A GET Upgrade request for `path` on `host` with `key` (base64 of 16 random bytes) offering
// `subprotocol`. Returns the size written into `out` (kMaxResponseBytes + host + path).
size_t write_request(char* out, size_t capacity, std::string_view host, std::string_view path,
                     std::string_view key, std::string_view subprotocol) noexcept;

struct ResponseResult {
  Status status = Status::kNeedMore;
  size_t size = 0;
  int http_status = 0;
  std::string_view subprotocol;
  const char* what = "";
};
// Parses the server's answer to write_request(): a 101 with the right Sec-WebSocket-Accept.
ResponseResult parse_response(ByteView data, std::string_view key,
                              size_t max_bytes = kDefaultMaxRequestBytes) noexcept;

}  // namespace tcpms::ws
