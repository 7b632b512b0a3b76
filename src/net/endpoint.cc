#include "tcpms/endpoint.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace tcpms {

std::optional<Endpoint> Endpoint::parse(std::string_view text, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<Endpoint> {
    if (error) *error = std::string("invalid address '") + std::string(text) + "': " + why;
    return std::nullopt;
  };
  if (text.substr(0, 5) == "unix:") return unix_socket(text.substr(5), error);
  std::string_view host, port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("expected [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("expected HOST:PORT");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    return fail("port must be a number from 0 to 65535");
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty() || host == "*") host = "0.0.0.0";

  Endpoint ep;
  std::string h(host);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
  if (::inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    ep.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    ep.len = sizeof(sockaddr_in6);
  } else {
    return fail("host must be a numeric IPv4 or IPv6 address");
  }
  return ep;
}

std::optional<Endpoint> Endpoint::unix_socket(std::string_view name, std::string* error) {
  Endpoint ep;
  auto* un = reinterpret_cast<sockaddr_un*>(&ep.addr);
  if (name.empty() || name.size() >= sizeof un->sun_path) {
    if (error) *error = "invalid unix socket name '" + std::string(name) + "': 1 to 107 bytes";
    return std::nullopt;
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, name.data(), name.size());
  if (name.front() == '@') un->sun_path[0] = '\0';  // abstract: the length delimits the name
  ep.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                  (name.front() == '@' ? 0 : 1));
  return ep;
}

Endpoint Endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Endpoint ep;
  std::memcpy(&ep.addr, sa, std::min<size_t>(len, sizeof ep.addr));
  ep.len = len;
  return ep;
}

uint16_t Endpoint::port() const noexcept {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return 0;
}

void Endpoint::set_port(uint16_t port) noexcept {
  if (addr.ss_family == AF_INET) reinterpret_cast<sockaddr_in&>(addr).sin_port = htons(port);
  if (addr.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6&>(addr).sin6_port = htons(port);
}

bool Endpoint::is_loopback() const noexcept {
  if (addr.ss_family == AF_UNIX) return true;
  if (addr.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr) >> 24) == 127;
  }
  if (addr.ss_family == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr);
  }
  return false;
}

std::string Endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (addr.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  if (addr.ss_family == AF_UNIX) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(addr);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string name(un.sun_path, n);
    if (!name.empty() && name[0] == '\0') {
      name[0] = '@';
    } else if (!name.empty() && name.back() == '\0') {
      name.pop_back();
    }
    return "unix:" + name;
  }
  return "?";
}

}  // namespace tcpms
