// HandoverChannel: the Unix stream socket between a running tcpms-server and the process
// replacing it (docs/upgrade.md). Frames (handover_frame.h) go one sendmsg each, with the
// descriptors they carry attached as SCM_RIGHTS to their first bytes; the receiver queues the
// descriptors in arrival order and gives each frame the number it announces.
//
// Blocking, with deadlines: only the main threads of the two processes use it, and a peer
// that stops answering must cost a bounded wait, then a rollback, never a hang.
//
// Thread rules: one thread at a time.
#pragma once

#include <deque>
#include <span>
#include <string>
#include <vector>

#include "handover/handover_frame.h"
#include "tcpms/unique_fd.h"

namespace tcpms::net {

class HandoverChannel {
 public:
  // The kernel passes at most SCM_MAX_FD (253) descriptors in one message: batches stay below.
  static constexpr size_t kMaxDescriptorsPerFrame = 250;

  explicit HandoverChannel(UniqueFd fd);
  int fd() const noexcept { return fd_.get(); }

  // Sends `frame` with `fds` (borrowed: the kernel duplicates them into the peer). Returns ""
  // or why it failed.
  std::string send(const handover::Frame& frame, std::span<const int> fds,
                   uint16_t version = handover::kHighestVersion);

  struct Received {
    handover::Frame frame;
    uint16_t version = 0;
    std::vector<UniqueFd> fds;  // as many as the frame announces, owned
    std::string error;          // empty on success
    bool timed_out = false;     // the error is the deadline: the peer may still be there
    bool ok() const noexcept { return error.empty(); }
  };
  // Waits up to `timeout_ms` for one whole frame. A peer that closed, a frame that does not
  // decode, or descriptors that do not match the frame are errors, never a crash.
  Received receive(int timeout_ms);

 private:
  bool read_more(int timeout_ms, Received& r);

  UniqueFd fd_;
  std::string in_;              // bytes received, not yet a whole frame
  std::deque<UniqueFd> fds_;    // descriptors received, not yet given to a frame
};

}  // namespace tcpms::net
