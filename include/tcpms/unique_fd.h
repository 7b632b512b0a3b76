// UniqueFd: the only owner of a file descriptor in tcpms. Move-only; closes in its destructor.
// Every socket, epoll, eventfd, timerfd and signalfd lives in one, so no code path can leak
// or double-close a descriptor (muduo's "leave it to dtor" rule).
#pragma once

#include <unistd.h>

#include <utility>

namespace tcpms {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }

  // Closes the current descriptor (if any) and takes ownership of `fd`.
  void reset(int fd = -1) noexcept {
    int old = std::exchange(fd_, fd);
    if (old >= 0) ::close(old);  // the only close() in tcpms
  }

 private:
  int fd_ = -1;
};

}  // namespace tcpms
