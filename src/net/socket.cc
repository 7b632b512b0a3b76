#include "net/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tcpms::net {

int read_somaxconn() {
  int value = 4096;  // the Linux default since 5.4
  if (FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "re")) {
    if (std::fscanf(f, "%d", &value) != 1) value = 4096;
    std::fclose(f);
  }
  return value;
}

namespace {

// A Unix socket file left by a server that did not exit cleanly (kill -9, a crash) makes bind
// fail with EADDRINUSE although nobody listens. Remove it when a connect to it is refused;
// one that answers belongs to a live server and is left alone (bind then says in use).
void remove_stale_unix_socket(const Endpoint& at) {
  const auto& un = reinterpret_cast<const sockaddr_un&>(at.addr);
  if (un.sun_path[0] == '\0') return;  // abstract name: no file
  struct stat st{};
  if (::lstat(un.sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return;
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0 &&
      errno == ECONNREFUSED)
    ::unlink(un.sun_path);
}

}  // namespace

UniqueFd open_listener(const Endpoint& at, int backlog, uint32_t defer_accept_s, int& err,
                       const char*& what) {
  if (at.is_unix()) remove_stale_unix_socket(at);
  UniqueFd fd(::socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    err = errno;
    what = "socket";
    return {};
  }
  int one = 1;
  if (!at.is_unix()) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // One listener per loop on the same port: the kernel spreads new connections over them
    // with no shared accept lock (and over worker processes the same way).
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      err = errno;
      what = "setsockopt(SO_REUSEPORT)";
      return {};
    }
    const int defer = static_cast<int>(defer_accept_s);
    if (defer > 0 && ::setsockopt(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer) != 0) {
      err = errno;
      what = "setsockopt(TCP_DEFER_ACCEPT)";
      return {};
    }
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0) {
    err = errno;
    what = "bind";
    return {};
  }
  if (::listen(fd.get(), backlog) != 0) {
    err = errno;
    what = "listen";
    return {};
  }
  err = 0;
  return fd;
}

int probe_port_free(const Endpoint& at) {
  if (at.is_unix() || at.port() == 0) return 0;
  UniqueFd fd(::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  int one = 1;
  // SO_REUSEADDR (for TIME_WAIT leftovers of a previous run) but not SO_REUSEPORT: this bind
  // fails if anything is listening there, including another tcpms-server.
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0) return errno;
  return 0;
}

UniqueFd reserve_port(const Endpoint& at, int& err) {
  UniqueFd fd(::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0) {
    err = errno;
    return {};
  }
  err = 0;
  return fd;
}

bool is_listening(int fd) noexcept {
  int on = 0;
  socklen_t len = sizeof on;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on != 0;
}

Endpoint local_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

void set_tcp_nodelay(int fd) noexcept {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string errno_text(int err) {
  char buf[128];
  return std::string(::strerror_r(err, buf, sizeof buf));
}

}  // namespace tcpms::net
