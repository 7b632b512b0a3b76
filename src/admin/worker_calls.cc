#include "admin/worker_calls.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "tcpms/unique_fd.h"

namespace tcpms::admin {
namespace {

// One request on its way to a worker and its answer coming back.
struct Exchange {
  size_t slot = 0;  // index into the answers
  UniqueFd fd;
  size_t sent = 0;
  bool connecting = false;
  std::string in;
  bool done = false;
};

std::string errno_text(int err) { return std::strerror(err); }

// Whether the process that listens at the other end of a connected Unix socket runs as this
// process's user (its credentials as of its listen()).
bool same_user(int fd) {
  ucred peer{};
  socklen_t len = sizeof peer;
  return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && peer.uid == ::geteuid();
}

}  // namespace

WorkerCalls::WorkerCalls(unsigned self, std::vector<Endpoint> workers, LocalAnswer local,
                         std::chrono::milliseconds timeout)
    : self_(self), workers_(std::move(workers)), local_(std::move(local)), timeout_(timeout) {}

std::vector<WorkerReply> WorkerCalls::call_all(std::string_view request) const {
  std::vector<unsigned> to(workers_.size());
  for (unsigned i = 0; i < to.size(); ++i) to[i] = i;
  return call(to, request);
}

WorkerReply WorkerCalls::call_one(unsigned worker, std::string_view request) const {
  return call({worker}, request).front();
}

std::vector<WorkerReply> WorkerCalls::call(const std::vector<unsigned>& to,
                                           std::string_view request) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::vector<WorkerReply> out(to.size());
  std::vector<Exchange> open;
  open.reserve(to.size());
  auto failed = [&](size_t slot, std::string what) {
    out[slot].error = fmt::format("worker {}: {}", to[slot], what);
  };
  // 1. Every remote request leaves (as far as the socket takes it) before anything waits.
  for (size_t i = 0; i < to.size(); ++i) {
    out[i].worker = to[i];
    if (to[i] == self_) continue;
    if (to[i] >= workers_.size()) {
      failed(i, "no such worker");
      continue;
    }
    const Endpoint& at = workers_[to[i]];
    Exchange x;
    x.slot = i;
    x.fd = UniqueFd(::socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!x.fd) {
      failed(i, "socket: " + errno_text(errno));
      continue;
    }
    if (::connect(x.fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0) {
      if (errno != EINPROGRESS) {  // a Unix socket whose backlog is full says EAGAIN
        failed(i, "connect: " + errno_text(errno));
        continue;
      }
      x.connecting = true;
    } else if (at.is_unix() && !same_user(x.fd.get())) {
      // An abstract name can be taken by any local process: the request (and its token)
      // goes only to a listener of this server's user.
      failed(i, "the socket belongs to another user");
      continue;
    }
    open.push_back(std::move(x));
  }
  // 2. This worker's own API, on this thread, while the others work on theirs.
  for (size_t i = 0; i < to.size(); ++i) {
    if (to[i] != self_) continue;
    std::string error;
    if (auto r = parse_http_reply(local_(request), &error)) out[i].http = std::move(*r);
    else failed(i, error);
  }
  // 3. Write the rest of each request and read each answer to its end (the worker closes).
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    for (Exchange& x : open) {
      if (x.done) continue;
      const bool writing = x.connecting || x.sent < request.size();
      fds.push_back({x.fd.get(), static_cast<short>(writing ? POLLOUT : POLLIN), 0});
    }
    if (fds.empty()) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()) + 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t k = 0;
    for (Exchange& x : open) {
      if (x.done) continue;
      const pollfd& p = fds[k++];
      if (p.revents == 0) continue;
      auto finish = [&](std::string error) {
        x.done = true;
        x.fd.reset();
        if (!error.empty()) failed(x.slot, std::move(error));
      };
      if (x.connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(x.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          finish("connect: " + errno_text(err));
          continue;
        }
        x.connecting = false;
        if (workers_[to[x.slot]].is_unix() && !same_user(x.fd.get())) {
          finish("the socket belongs to another user");
          continue;
        }
      }
      if (x.sent < request.size()) {
        ssize_t w = ::send(x.fd.get(), request.data() + x.sent, request.size() - x.sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) finish("send: " + errno_text(errno));
        else if (w > 0) x.sent += static_cast<size_t>(w);
        continue;
      }
      char buf[16384];
      ssize_t r = ::recv(x.fd.get(), buf, sizeof buf, 0);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) finish("recv: " + errno_text(errno));
        continue;
      }
      if (r > 0) {
        x.in.append(buf, static_cast<size_t>(r));
        if (x.in.size() > kMaxReplyBytes)
          finish(fmt::format("answer larger than {} bytes", kMaxReplyBytes));
        continue;
      }
      std::string error;  // r == 0: the answer is complete
      if (auto reply = parse_http_reply(x.in, &error)) out[x.slot].http = std::move(*reply);
      finish(std::move(error));
    }
  }
  for (Exchange& x : open)
    if (!x.done) failed(x.slot, fmt::format("no answer within {} ms", timeout_.count()));
  return out;
}

std::string make_request(std::string_view method, std::string_view target, std::string_view token,
                         std::string_view body, std::string_view content_type) {
  std::string out = fmt::format("{} {} HTTP/1.1\r\nHost: tcpms-worker\r\nConnection: close\r\n",
                                method, target);
  if (!token.empty()) out += fmt::format("Authorization: Bearer {}\r\n", token);
  if (!content_type.empty()) out += fmt::format("Content-Type: {}\r\n", content_type);
  if (!body.empty() || method == "POST") out += fmt::format("Content-Length: {}\r\n", body.size());
  out += "\r\n";
  out += body;
  return out;
}

std::string url_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace tcpms::admin
