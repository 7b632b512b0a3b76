// Helpers for whole-loop tests: an EventLoop on its own thread with a loopback listener, a
// handler that records what the engine told it, and blocking client sockets.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "net/socket.h"
#include "tcpms/connection.h"
#include "tcpms/endpoint.h"
#include "tcpms/event_loop.h"

namespace tcpms::testing {

using namespace std::chrono_literals;

// Echoes (unless told not to) and records every callback. Callbacks run on the loop thread;
// the test thread reads the atomics, or the vectors under `mu`.
class RecordingHandler : public Handler {
 public:
  bool echo = true;
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::atomic<int> writable{0};
  std::mutex mu;
  std::vector<ConnId> ids;           // guarded by mu
  std::vector<CloseReason> reasons;  // guarded by mu
  std::vector<int> errors;           // guarded by mu

  Action on_open(Connection& c) override {
    std::lock_guard lock(mu);
    ids.push_back(c.id());
    opened.fetch_add(1);
    return Action::kKeep;
  }
  DataResult on_data(Connection& c, ByteView data) override {
    if (echo) c.send(data);
    return {data.size(), Action::kKeep};
  }
  void on_writable(Connection&) override { writable.fetch_add(1); }
  void on_close(Connection& c, CloseReason reason) override {
    std::lock_guard lock(mu);
    reasons.push_back(reason);
    errors.push_back(c.last_error());
    closed.fetch_add(1);
  }
  ConnId id(size_t i) {
    std::lock_guard lock(mu);
    return ids.at(i);
  }
  CloseReason reason(size_t i) {
    std::lock_guard lock(mu);
    return reasons.at(i);
  }
};

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

class LoopThread {
 public:
  explicit LoopThread(LoopConfig config = {}) : loop_(0, config) {}
  ~LoopThread() { stop(); }

  EventLoop& loop() { return loop_; }

  // Before start(): registers a new H (the loop owns it) and returns it and its index.
  template <typename H = RecordingHandler>
  H* add(uint8_t* index = nullptr) {
    auto* h = new H;
    uint8_t i = loop_.add_handler(std::unique_ptr<Handler>(h));
    if (index) *index = i;
    return h;
  }
  // Before start(): a new H serving a listener on 127.0.0.1; sets `port`.
  template <typename H = RecordingHandler>
  H* serve(uint16_t& port) {
    uint8_t i = 0;
    H* h = add<H>(&i);
    port = listen(i);
    return h;
  }

  // Before start(): a listener on 127.0.0.1 for `handler`. Returns the port.
  uint16_t listen(uint8_t handler) {
    int err = 0;
    const char* what = "";
    UniqueFd fd = net::open_listener(*Endpoint::parse("127.0.0.1:0"), 128, 0, err, what);
    EXPECT_TRUE(fd.valid()) << what << ": " << net::errno_text(err);
    uint16_t port = net::local_endpoint(fd.get()).port();
    loop_.add_listener(std::move(fd), handler);
    return port;
  }

  void start() {
    thread_ = std::thread([this] { loop_.run(); });
  }
  void stop() {
    if (thread_.joinable()) {
      loop_.stop();
      thread_.join();
    }
  }

  // Runs `f` on the loop thread and returns its result.
  template <typename F>
  auto call(F f) -> decltype(f()) {
    using R = decltype(f());
    std::promise<R> done;
    auto result = done.get_future();
    loop_.post([&] {
      if constexpr (std::is_void_v<R>) {
        f();
        done.set_value();
      } else {
        done.set_value(f());
      }
    });
    if (result.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "loop did not run the task";
      std::abort();  // `done` is referenced by the queued task: cannot return safely
    }
    return result.get();
  }

 private:
  EventLoop loop_;
  std::thread thread_;
};

// A blocking client with a receive timeout, so a test that expects bytes fails instead of
// hanging. `rcvbuf` > 0 shrinks the receive buffer before connecting (a slow reader).
inline UniqueFd connect_client(uint16_t port, int rcvbuf = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (rcvbuf > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

inline bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads exactly `n` bytes; returns fewer on EOF, error or timeout.
inline std::string recv_exactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// 0 on EOF, -1 with errno on error or timeout, else bytes read.
inline ssize_t recv_some(int fd, size_t max = 4096) {
  std::string buf(max, '\0');
  return ::recv(fd, buf.data(), max, 0);
}

inline std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 65521) & 0xff);
  return s;
}

}  // namespace tcpms::testing
