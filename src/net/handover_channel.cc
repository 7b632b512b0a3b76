#include "net/handover_channel.h"

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>

#include "net/socket.h"

namespace tcpms::net {

HandoverChannel::HandoverChannel(UniqueFd fd) : fd_(std::move(fd)) {
  // A peer that stops reading must not block us for ever: sends give up after this.
  timeval tv{10, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string HandoverChannel::send(const handover::Frame& frame, std::span<const int> fds,
                                  uint16_t version) {
  if (fds.size() != handover::descriptors_of(frame)) return "frame and descriptors do not match";
  if (fds.size() > kMaxDescriptorsPerFrame) return "too many descriptors for one frame";
  std::string bytes;
  handover::encode(frame, bytes, version);
  size_t sent = 0;
  while (sent < bytes.size()) {
    iovec iov{bytes.data() + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptorsPerFrame)];
    if (sent == 0 && !fds.empty()) {
      // The descriptors ride on the frame's first bytes.
      const size_t len = sizeof(int) * fds.size();
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(len);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(len);
      std::memcpy(CMSG_DATA(c), fds.data(), len);
    }
    ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return "send: " + errno_text(errno);
    }
    sent += static_cast<size_t>(n);
  }
  return {};
}

bool HandoverChannel::read_more(int timeout_ms, Received& r) {
  std::string& error = r.error;
  pollfd p{fd_.get(), POLLIN, 0};
  for (;;) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "poll: " + errno_text(errno);
      return false;
    }
    if (n == 0) {
      error = "no answer within " + std::to_string(timeout_ms) + " ms";
      r.timed_out = true;
      return false;
    }
    break;
  }
  char buf[64 * 1024];
  iovec iov{buf, sizeof buf};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    error = "receive: " + errno_text(errno);
    return false;
  }
  // Descriptors first: whatever else happens, each one received is owned (and closed) here.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds_.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    error = "descriptors cut short (more than one frame's worth at once)";
    return false;
  }
  if (n == 0) {
    error = "the other process closed the handover socket";
    return false;
  }
  in_.append(buf, static_cast<size_t>(n));
  return true;
}

HandoverChannel::Received HandoverChannel::receive(int timeout_ms) {
  Received r;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto left = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(ms.count(), 0));
  };
  while (in_.size() < handover::kLengthBytes)
    if (!read_more(left(), r)) return r;
  handover::LengthResult len = handover::decode_length(as_bytes(in_));
  if (len.error != nullptr) {
    r.error = len.error;
    return r;
  }
  const size_t whole = handover::kLengthBytes + len.body_bytes;
  while (in_.size() < whole)
    if (!read_more(left(), r)) return r;
  handover::DecodeResult d =
      handover::decode_body(as_bytes(in_).subspan(handover::kLengthBytes, len.body_bytes));
  in_.erase(0, whole);
  if (!d.ok()) {
    r.error = d.error;
    if (d.version != 0) r.error += " (version " + std::to_string(d.version) + ")";
    return r;
  }
  const size_t want = handover::descriptors_of(d.frame);
  if (fds_.size() < want) {
    r.error = "a frame announced " + std::to_string(want) + " descriptors, " +
              std::to_string(fds_.size()) + " came with it";
    return r;
  }
  for (size_t i = 0; i < want; ++i) {
    r.fds.push_back(std::move(fds_.front()));
    fds_.pop_front();
  }
  r.frame = std::move(d.frame);
  r.version = d.version;
  return r;
}

}  // namespace tcpms::net
