// How a run is divided: the total (connections, cycles, rate) over worker processes, then over
// the event loops of each process, and how many processes the descriptor limit requires.
//
// Shares are contiguous: part i gets [offset, offset + count) of the global connection numbers,
// which keeps the (source, target) assignment of targets.h identical however the run is split.
//
// Threads: pure functions.
#pragma once

#include <cstdint>

namespace tcpms::benchapp {

struct Share {
  int64_t offset = 0;  // first global connection number
  int64_t count = 0;   // connections (or cycles; 0 with unlimited = true means no cap)
  double rate = 0;     // per second; 0: unpaced
  int64_t max_pending = 0;
  bool unlimited = false;
};

// Part `index` of `parts`: counts differ by at most one (the first total % parts get one more),
// rates and max_pending are divided evenly (max_pending at least 1).
Share split_share(const Share& whole, int parts, int index);

// Descriptors a bench process keeps for itself (epoll, eventfds, pipes, stdio, /proc reads).
inline constexpr int64_t kReservedFds = 100;

// Worker processes needed so that none holds more than nofile - kReservedFds connections
// (at least 1). `nofile` <= 0 means unknown: 1.
int processes_needed(int64_t peak_connections, int64_t nofile);

}  // namespace tcpms::benchapp
