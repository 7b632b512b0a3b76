// Endpoint: an IPv4 or IPv6 address and port, parsed from "HOST:PORT" or "[V6]:PORT", or a
// Unix stream socket: "unix:/path" or "unix:@name" (Linux abstract namespace: no file to clean
// up; worker processes of one server talk to each other this way).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tcpms {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;

  // Numeric hosts only ("127.0.0.1:7000", "0.0.0.0:1883", "[::1]:7000", "localhost:7000" is
  // accepted as 127.0.0.1), or "unix:..." as above. Returns nullopt and sets `error` on
  // anything else.
  static std::optional<Endpoint> parse(std::string_view text, std::string* error = nullptr);
  static Endpoint from_sockaddr(const sockaddr* sa, socklen_t len);
  static std::optional<Endpoint> unix_socket(std::string_view path_or_at_name,
                                             std::string* error = nullptr);

  uint16_t port() const noexcept;
  void set_port(uint16_t port) noexcept;
  int family() const noexcept { return addr.ss_family; }
  bool is_unix() const noexcept { return addr.ss_family == AF_UNIX; }
  bool is_loopback() const noexcept;
  std::string to_string() const;
};

}  // namespace tcpms
