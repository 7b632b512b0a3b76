#include "proxy/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace tcpms::proxy {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";

Result error(const char* what) noexcept {
  Result r;
  r.status = Status::kError;
  r.error = what;
  return r;
}

Result need_more() noexcept { return Result{}; }

uint16_t be16(const unsigned char* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// A port: 1 to 5 digits, no leading zero (the spec's "0..65535" written plainly).
bool parse_port(std::string_view s, uint16_t& out) noexcept {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

bool parse_address(std::string_view s, int family, uint16_t port, sockaddr_storage& out) noexcept {
  char text[INET6_ADDRSTRLEN + 1];
  if (s.empty() || s.size() >= sizeof text) return false;
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  std::memset(&out, 0, sizeof out);
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    return ::inet_pton(AF_INET, text, &a->sin_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&out);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  return ::inet_pton(AF_INET6, text, &a->sin6_addr) == 1;
}

// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", or "PROXY UNKNOWN ...\r\n".
Result parse_v1(std::string_view in) noexcept {
  const size_t window = std::min(in.size(), kV1MaxBytes);
  const size_t lf = in.substr(0, window).find('\n');
  if (lf == std::string_view::npos) {
    return in.size() >= kV1MaxBytes ? error("PROXY v1 header longer than 107 bytes")
                                     : need_more();
  }
  if (lf == 0 || in[lf - 1] != '\r') return error("PROXY v1 header line does not end in CRLF");
  std::string_view line = in.substr(kV1Prefix.size(), lf - 1 - kV1Prefix.size());
  Result r;
  r.status = Status::kComplete;
  r.header.size = lf + 1;
  r.header.version = 1;
  // Fields are separated by exactly one space.
  std::string_view fields[5];
  size_t count = 0;
  while (count < 5) {
    size_t sp = line.find(' ');
    fields[count++] = line.substr(0, sp);
    if (sp == std::string_view::npos) {
      line = {};
      break;
    }
    line.remove_prefix(sp + 1);
  }
  if (fields[0] == "UNKNOWN") return r;  // the rest of the line is to be ignored
  int family;
  if (fields[0] == "TCP4") family = AF_INET;
  else if (fields[0] == "TCP6") family = AF_INET6;
  else return error("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  if (count != 5 || !line.empty()) return error("PROXY v1 header does not have 5 fields");
  uint16_t sport, dport;
  if (!parse_port(fields[3], sport) || !parse_port(fields[4], dport))
    return error("PROXY v1 port is not a number in 0..65535");
  if (!parse_address(fields[1], family, sport, r.header.source) ||
      !parse_address(fields[2], family, dport, r.header.destination))
    return error("PROXY v1 address does not match its protocol");
  r.header.has_addresses = true;
  return r;
}

Result parse_v2(const unsigned char* p, size_t n) noexcept {
  if (n < 16) return need_more();
  const unsigned version = p[12] >> 4, command = p[12] & 0x0F;
  if (version != 2) return error("PROXY v2 header has an unknown version");
  if (command > 1) return error("PROXY v2 header has an unknown command");
  const unsigned family = p[13] >> 4, transport = p[13] & 0x0F;
  const size_t length = be16(p + 14);
  const size_t total = 16 + length;
  if (total > kMaxHeaderBytes) return error("PROXY v2 header longer than 4 KiB");
  if (family > 3 || transport > 2) return error("PROXY v2 header has an unknown family");
  if (n < total) return need_more();
  Result r;
  r.status = Status::kComplete;
  r.header.size = total;
  r.header.version = 2;
  const unsigned char* body = p + 16;
  size_t addr_len = 0;
  if (command == 1) {  // PROXY; LOCAL (0) keeps the connection's own addresses
    if (transport == 2) return error("PROXY v2 header describes a datagram connection");
    if (family == 1 && transport == 1) {
      addr_len = 12;
      if (length < addr_len) return error("PROXY v2 IPv4 addresses are truncated");
      auto* s = reinterpret_cast<sockaddr_in*>(&r.header.source);
      auto* d = reinterpret_cast<sockaddr_in*>(&r.header.destination);
      s->sin_family = d->sin_family = AF_INET;
      std::memcpy(&s->sin_addr, body, 4);
      std::memcpy(&d->sin_addr, body + 4, 4);
      std::memcpy(&s->sin_port, body + 8, 2);
      std::memcpy(&d->sin_port, body + 10, 2);
      r.header.has_addresses = true;
    } else if (family == 2 && transport == 1) {
      addr_len = 36;
      if (length < addr_len) return error("PROXY v2 IPv6 addresses are truncated");
      auto* s = reinterpret_cast<sockaddr_in6*>(&r.header.source);
      auto* d = reinterpret_cast<sockaddr_in6*>(&r.header.destination);
      s->sin6_family = d->sin6_family = AF_INET6;
      std::memcpy(&s->sin6_addr, body, 16);
      std::memcpy(&d->sin6_addr, body + 16, 16);
      std::memcpy(&s->sin6_port, body + 32, 2);
      std::memcpy(&d->sin6_port, body + 34, 2);
      r.header.has_addresses = true;
    } else if (family == 3) {
      addr_len = 216;  // AF_UNIX paths: no address we could use, the real one stands
      if (length < addr_len) return error("PROXY v2 unix addresses are truncated");
    }
  }
  // Type-length-value extensions: their contents are not used, but their framing must hold.
  if (command == 1 && family != 0) {
    size_t off = addr_len;
    while (off < length) {
      if (length - off < 3) return error("PROXY v2 TLV is truncated");
      const size_t tlv = 3 + be16(body + off + 1);
      if (tlv > length - off) return error("PROXY v2 TLV overruns the header");
      off += tlv;
    }
  }
  return r;
}

}  // namespace

Result parse(ByteView data) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  if (n == 0) return need_more();
  if (p[0] == kV2Signature[0]) {
    const size_t k = std::min(n, kV2SignatureBytes);
    if (std::memcmp(p, kV2Signature, k) != 0) return error("no PROXY header (bad v2 signature)");
    return parse_v2(p, n);
  }
  if (p[0] == 'P') {
    const size_t k = std::min(n, kV1Prefix.size());
    if (std::memcmp(p, kV1Prefix.data(), k) != 0) return error("no PROXY header (bad v1 prefix)");
    if (n < kV1Prefix.size()) return need_more();
    return parse_v1(std::string_view(reinterpret_cast<const char*>(p), n));
  }
  return error("no PROXY header");
}

size_t encode_v1(const sockaddr_storage& source, const sockaddr_storage& destination,
                 std::byte* out) noexcept {
  if (source.ss_family != destination.ss_family) return 0;
  char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
  uint16_t sp, dp;
  const char* proto;
  if (source.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&source);
    auto* b = reinterpret_cast<const sockaddr_in*>(&destination);
    ::inet_ntop(AF_INET, &a->sin_addr, s, sizeof s);
    ::inet_ntop(AF_INET, &b->sin_addr, d, sizeof d);
    sp = ntohs(a->sin_port), dp = ntohs(b->sin_port), proto = "TCP4";
  } else if (source.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&source);
    auto* b = reinterpret_cast<const sockaddr_in6*>(&destination);
    ::inet_ntop(AF_INET6, &a->sin6_addr, s, sizeof s);
    ::inet_ntop(AF_INET6, &b->sin6_addr, d, sizeof d);
    sp = ntohs(a->sin6_port), dp = ntohs(b->sin6_port), proto = "TCP6";
  } else {
    return 0;
  }
  int n = std::snprintf(reinterpret_cast<char*>(out), kV1MaxBytes + 1, "PROXY %s %s %s %u %u\r\n",
                        proto, s, d, sp, dp);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t encode_v2(const sockaddr_storage& source, const sockaddr_storage& destination,
                 std::byte* out) noexcept {
  if (source.ss_family != destination.ss_family) return 0;
  auto* p = reinterpret_cast<unsigned char*>(out);
  std::memcpy(p, kV2Signature, kV2SignatureBytes);
  p[12] = 0x21;  // version 2, PROXY
  size_t len;
  if (source.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&source);
    auto* b = reinterpret_cast<const sockaddr_in*>(&destination);
    p[13] = 0x11;
    len = 12;
    std::memcpy(p + 16, &a->sin_addr, 4);
    std::memcpy(p + 20, &b->sin_addr, 4);
    std::memcpy(p + 24, &a->sin_port, 2);
    std::memcpy(p + 26, &b->sin_port, 2);
  } else if (source.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&source);
    auto* b = reinterpret_cast<const sockaddr_in6*>(&destination);
    p[13] = 0x21;
    len = 36;
    std::memcpy(p + 16, &a->sin6_addr, 16);
    std::memcpy(p + 32, &b->sin6_addr, 16);
    std::memcpy(p + 48, &a->sin6_port, 2);
    std::memcpy(p + 50, &b->sin6_port, 2);
  } else {
    return 0;
  }
  p[14] = 0;
  p[15] = static_cast<unsigned char>(len);
  return 16 + len;
}

}  // namespace tcpms::proxy
