#include "websocket/handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace tcpms::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `each` with every comma-separated element of an HTTP list value, trimmed; stops when
// it returns true and returns true then.
template <typename F>
bool any_element(std::string_view list, F each) {
  while (true) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty() && each(item)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

bool has_token(std::string_view list, std::string_view token) {
  return any_element(list, [&](std::string_view item) { return iequals(item, token); });
}

bool is_base64_key(std::string_view k) noexcept {
  // 16 bytes in base64: 22 characters and "==".
  if (k.size() != 24 || k[22] != '=' || k[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    char c = k[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '+' || c == '/')) {
      return false;
    }
  }
  return true;
}

bool is_tchar(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

UpgradeResult refuse(int status, const char* what) noexcept {
  UpgradeResult r;
  r.status = Status::kError;
  r.http_status = status;
  r.what = what;
  return r;
}

// Splits the header block (after the start line, up to the blank line) into lines and calls
// `each(name, value)`; false on a malformed line.
template <typename F>
bool for_each_header(std::string_view block, F each) {
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 2);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') return false;  // obsolete line folding
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) return false;
    each(name, trim(line.substr(colon + 1)));
  }
  return true;
}

const char* status_text(int status) noexcept {
  switch (status) {
    case 101: return "Switching Protocols";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

}  // namespace

UpgradeResult parse_upgrade(ByteView data, const ServerPolicy& policy) noexcept {
  std::string_view in(reinterpret_cast<const char*>(data.data()), data.size());
  // Fail fast on bytes that cannot start a request (raw MQTT sent to a WebSocket port):
  // waiting for a blank line that never comes would hold the connection to its deadline.
  if (!in.empty() && !(in[0] >= 'A' && in[0] <= 'Z')) return refuse(400, "not an HTTP request");
  const size_t window = std::min(in.size(), policy.max_request_bytes);
  const size_t end = in.substr(0, window).find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (in.size() >= policy.max_request_bytes)
      return refuse(431, "request headers larger than the listener allows");
    // The request line alone can already be judged.
    size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return {};
    std::string_view line = in.substr(0, eol);
    if (!line.starts_with("GET ")) return refuse(405, "method is not GET");
    return {};
  }
  UpgradeResult r;
  r.size = end + 4;
  const size_t eol = in.find("\r\n");
  std::string_view line = in.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return refuse(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method != "GET") return refuse(405, "method is not GET");
  if (!version.starts_with("HTTP/")) return refuse(400, "malformed request line");
  if (version != "HTTP/1.1") return refuse(505, "WebSocket needs HTTP/1.1");
  if (target.empty() || target.front() != '/') return refuse(400, "request target is not a path");
  if (target.substr(0, target.find('?')) != policy.path) return refuse(404, "no WebSocket endpoint at this path");
  r.path = target;

  std::string_view host, upgrade, connection, ws_version, key;
  bool offered = false;
  std::string_view chosen;
  size_t chosen_rank = policy.subprotocols.size();
  int duplicates = 0;
  bool ok = for_each_header(in.substr(eol + 2, end + 2 - (eol + 2)),
                            [&](std::string_view name, std::string_view value) {
    auto set_once = [&](std::string_view& field) {
      if (!field.empty()) ++duplicates;
      field = value;
    };
    if (iequals(name, "Host")) set_once(host);
    else if (iequals(name, "Upgrade")) set_once(upgrade);
    else if (iequals(name, "Connection")) set_once(connection);
    else if (iequals(name, "Sec-WebSocket-Version")) set_once(ws_version);
    else if (iequals(name, "Sec-WebSocket-Key")) set_once(key);
    else if (iequals(name, "Origin")) r.origin = value;
    else if (iequals(name, "Sec-WebSocket-Protocol")) {
      // May be sent as several headers: every element counts.
      any_element(value, [&](std::string_view offer) {
        offered = true;
        for (size_t i = 0; i < chosen_rank; ++i) {
          if (offer == policy.subprotocols[i]) {
            chosen = policy.subprotocols[i];
            chosen_rank = i;
            break;
          }
        }
        return false;
      });
    }
  });
  if (!ok) return refuse(400, "malformed header line");
  if (duplicates) return refuse(400, "a WebSocket header appears twice");
  if (host.empty()) return refuse(400, "no Host header");
  if (!has_token(upgrade, "websocket")) return refuse(426, "not a WebSocket upgrade request");
  if (!has_token(connection, "upgrade")) return refuse(426, "Connection header lacks 'upgrade'");
  if (ws_version != "13") return refuse(426, "unsupported Sec-WebSocket-Version (13 is spoken)");
  if (!is_base64_key(key)) return refuse(400, "Sec-WebSocket-Key is not 16 bytes in base64");
  if (offered && chosen.empty() && !policy.subprotocols.empty())
    return refuse(400, "none of the offered subprotocols is spoken here (offer mqtt)");
  r.status = Status::kComplete;
  r.key = key;
  r.subprotocol = chosen;
  return r;
}

void accept_key(std::string_view key, char out[28]) noexcept {
  unsigned char input[64];
  const size_t n = std::min(key.size(), sizeof input - kGuid.size());
  std::memcpy(input, key.data(), n);
  std::memcpy(input + n, kGuid.data(), kGuid.size());
  unsigned char digest[SHA_DIGEST_LENGTH];
  ::SHA1(input, n + kGuid.size(), digest);
  unsigned char text[29];
  ::EVP_EncodeBlock(text, digest, SHA_DIGEST_LENGTH);  // 28 characters and a NUL
  std::memcpy(out, text, 28);
}

size_t write_accept(char* out, std::string_view key, std::string_view subprotocol) noexcept {
  char accept[28];
  accept_key(key, accept);
  int n = std::snprintf(out, kMaxResponseBytes,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %.28s\r\n",
                        accept);
  if (!subprotocol.empty() && subprotocol.size() < 64) {
    n += std::snprintf(out + n, kMaxResponseBytes - static_cast<size_t>(n),
                       "Sec-WebSocket-Protocol: %.*s\r\n", static_cast<int>(subprotocol.size()),
                       subprotocol.data());
  }
  n += std::snprintf(out + n, kMaxResponseBytes - static_cast<size_t>(n), "\r\n");
  return static_cast<size_t>(n);
}

size_t write_refusal(char* out, int http_status, std::string_view what) noexcept {
  const int body = static_cast<int>(std::min<size_t>(what.size(), 200));
  const char* extra = http_status == 426   ? "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
                      : http_status == 405 ? "Allow: GET\r\n"
                                           : "";
  int n = std::snprintf(out, kMaxResponseBytes,
                        "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n"
                        "Connection: close\r\n\r\n%.*s\n",
                        http_status, status_text(http_status), extra, body + 1, body, what.data());
  return static_cast<size_t>(std::min<int>(n, static_cast<int>(kMaxResponseBytes) - 1));
}

size_t write_request(char* out, size_t capacity, std::string_view host, std::string_view path,
                     std::string_view key, std::string_view subprotocol) noexcept {
  int n = std::snprintf(out, capacity,
                        "GET %.*s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %.*s\r\n"
                        "Sec-WebSocket-Version: 13\r\n",
                        static_cast<int>(path.size()), path.data(), static_cast<int>(host.size()),
                        host.data(), static_cast<int>(key.size()), key.data());
  if (n > 0 && !subprotocol.empty() && static_cast<size_t>(n) < capacity) {
    n += std::snprintf(out + n, capacity - static_cast<size_t>(n),
                       "Sec-WebSocket-Protocol: %.*s\r\n", static_cast<int>(subprotocol.size()),
                       subprotocol.data());
  }
  if (n > 0 && static_cast<size_t>(n) < capacity)
    n += std::snprintf(out + n, capacity - static_cast<size_t>(n), "\r\n");
  return n > 0 ? std::min(static_cast<size_t>(n), capacity - 1) : 0;
}

ResponseResult parse_response(ByteView data, std::string_view key, size_t max_bytes) noexcept {
  std::string_view in(reinterpret_cast<const char*>(data.data()), data.size());
  ResponseResult r;
  const size_t end = in.substr(0, std::min(in.size(), max_bytes)).find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (in.size() >= max_bytes) {
      r.status = Status::kError;
      r.what = "response headers too large";
    }
    return r;
  }
  r.size = end + 4;
  r.status = Status::kError;
  const size_t eol = in.find("\r\n");
  std::string_view line = in.substr(0, eol);
  if (!line.starts_with("HTTP/1.1 ") || line.size() < 12) {
    r.what = "not an HTTP/1.1 response";
    return r;
  }
  r.http_status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (r.http_status != 101) {
    r.what = "the server refused the upgrade";
    return r;
  }
  char want[28];
  accept_key(key, want);
  bool accept_ok = false, upgrade_ok = false;
  for_each_header(in.substr(eol + 2, end + 2 - (eol + 2)),
                  [&](std::string_view name, std::string_view value) {
    if (iequals(name, "Sec-WebSocket-Accept")) accept_ok = value == std::string_view(want, 28);
    else if (iequals(name, "Upgrade")) upgrade_ok = has_token(value, "websocket");
    else if (iequals(name, "Sec-WebSocket-Protocol")) r.subprotocol = value;
  });
  if (!upgrade_ok) {
    r.what = "101 without Upgrade: websocket";
    return r;
  }
  if (!accept_ok) {
    r.what = "wrong Sec-WebSocket-Accept";
    return r;
  }
  r.status = Status::kComplete;
  return r;
}

}  // namespace tcpms::ws
