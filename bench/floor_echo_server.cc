// The FLOOR echo server: the textbook epoll echo server that tcpms is measured against.
//
//   floor_echo_server --listen 127.0.0.1:PORT --threads N
//
// Each thread has its own SO_REUSEPORT listener and its own edge-triggered epoll, and serves
// the connections it accepts with one 64 KiB stack buffer: read until EAGAIN, write each chunk
// back at once. Only when a write is short are the unsent bytes kept (in a per-thread map keyed
// by fd, so an idle connection costs no user-space memory at all), EPOLLOUT is armed, and reading
// stops until they are flushed. EOF or an error closes the connection.
//
// Deliberately nothing more: no tcpms code, no timeouts, no limits, no stats. Port 0 picks a
// free port; the chosen address is printed as "listening on HOST:PORT".
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

constexpr std::size_t kReadBufferBytes = 64 * 1024;
constexpr int kMaxEvents = 1024;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "floor_echo_server: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int listen_on(const sockaddr_storage& addr, socklen_t len) {
  const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT");
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) die("bind");
  if (::listen(fd, 65535) != 0) die("listen");  // the kernel caps it at net.core.somaxconn
  return fd;
}

class EchoLoop {
 public:
  explicit EchoLoop(int listen_fd) : listen_fd_(listen_fd), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) die("epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = listen_fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) die("epoll_ctl listener");
  }

  [[noreturn]] void run() {
    epoll_event events[kMaxEvents];
    for (;;) {
      const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          accept_all();
        } else if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          close_connection(fd);
        } else {
          serve(fd);
        }
      }
    }
  }

 private:
  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // EAGAIN: backlog empty. EMFILE/ENFILE: out of fds; the rest wait in the backlog until
        // the next connection's edge (the floor has no reserve-fd trick).
        if (errno != EAGAIN && errno != EWOULDBLOCK) std::perror("floor_echo_server: accept4");
        return;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLET;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ::close(fd);
        continue;
      }
      // Bytes may have arrived before the registration; edge-triggered epoll still reports them
      // (the first epoll_wait after ADD sees the ready state), so nothing to do here.
    }
  }

  // Readable or writable: flush what is pending, then echo until EAGAIN.
  void serve(int fd) {
    if (const auto it = pending_.find(fd); it != pending_.end()) {
      const ssize_t sent = send_some(fd, it->second.data(), it->second.size());
      if (sent < 0) return close_connection(fd);
      it->second.erase(0, static_cast<std::size_t>(sent));
      if (!it->second.empty()) return;  // still blocked: wait for the next EPOLLOUT
      pending_.erase(it);
      arm_write(fd, false);
      // Fall through: reading stopped while blocked, and edge-triggered epoll will not report
      // those bytes again.
    }
    char buf[kReadBufferBytes];
    for (;;) {
      const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
      if (got > 0) {
        const ssize_t sent = send_some(fd, buf, static_cast<std::size_t>(got));
        if (sent < 0) return close_connection(fd);
        if (sent < got) {
          pending_[fd].assign(buf + sent, static_cast<std::size_t>(got - sent));
          arm_write(fd, true);
          return;  // stop reading until the peer drains: the backpressure
        }
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close_connection(fd);  // EOF or error
      return;
    }
  }

  // Bytes sent (fewer than asked when the socket buffer fills), or -1 on a send error.
  static ssize_t send_some(int fd, const char* data, std::size_t len) {
    std::size_t done = 0;
    while (done < len) {
      const ssize_t n = ::send(fd, data + done, len - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        return -1;
      }
    }
    return static_cast<ssize_t>(done);
  }

  void arm_write(int fd, bool on) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET | (on ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }

  void close_connection(int fd) {
    pending_.erase(fd);
    ::close(fd);  // also removes it from the epoll set: the fd is not shared
  }

  int listen_fd_;
  int epoll_fd_;
  std::unordered_map<int, std::string> pending_;  // only connections with a short write
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"FLOOR: a minimal epoll echo server, the baseline tcpms is compared against"};
  std::string listen = "127.0.0.1:7000";
  unsigned threads = 1;
  app.add_option("--listen", listen, "HOST:PORT ([v6]:PORT for IPv6; port 0 picks one)");
  app.add_option("--threads", threads, "event loops, each with its own listener")
      ->check(CLI::Range(1u, 1024u));
  CLI11_PARSE(app, argc, argv);

  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "floor_echo_server: --listen wants HOST:PORT, got %s\n", listen.c_str());
    return 2;
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), listen.c_str() + colon + 1, &hints, &found); rc != 0) {
    std::fprintf(stderr, "floor_echo_server: bad --listen %s: %s\n", listen.c_str(), gai_strerror(rc));
    return 2;
  }
  sockaddr_storage addr{};
  socklen_t addr_len = found->ai_addrlen;
  std::memcpy(&addr, found->ai_addr, addr_len);
  ::freeaddrinfo(found);

  // A million connections need a million fds: take the hard limit.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }

  // The first listener fixes the port (port 0 means the kernel's choice); the others share it.
  std::vector<int> listeners{listen_on(addr, addr_len)};
  if (::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) die("getsockname");
  for (unsigned i = 1; i < threads; ++i) listeners.push_back(listen_on(addr, addr_len));

  char host_text[NI_MAXHOST] = "?";
  char port_text[NI_MAXSERV] = "?";
  ::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), addr_len, host_text, sizeof host_text,
                port_text, sizeof port_text, NI_NUMERICHOST | NI_NUMERICSERV);
  const bool v6 = addr.ss_family == AF_INET6;
  std::printf("listening on %s%s%s:%s threads %u\n", v6 ? "[" : "", host_text, v6 ? "]" : "",
              port_text, threads);
  std::fflush(stdout);

  std::vector<std::thread> loops;
  for (unsigned i = 1; i < threads; ++i) loops.emplace_back([fd = listeners[i]] { EchoLoop(fd).run(); });
  EchoLoop(listeners[0]).run();  // SIGINT/SIGTERM end the process
}
