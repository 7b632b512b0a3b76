// Measures what one TCP connection costs the kernel on this host instead of guessing: opens a
// bounded number of loopback pairs, reads slab growth, closes them all, and scales per socket.
// Thread-safety: any thread, but concurrent calls (or any other slab-heavy work on the host)
// blur the figure; the CLI calls it once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tcpms::doctor {

// Upper bound on pairs per round: a few thousand is enough signal and stays far below every
// default limit (RLIMIT_NOFILE 1024 soft is handled by shrinking the round).
inline constexpr int kMaxMeasurePairs = 5000;

struct SlabGrowth {
  std::string cache;   // slabinfo name, e.g. "TCP", "sock_inode_cache"
  std::int64_t bytes;  // active objects x object size, after minus before
};

struct Measurement {
  int pairs = 0;   // pairs opened per round (after the RLIMIT and kMaxMeasurePairs bounds)
  int rounds = 0;  // rounds taken; the median is reported
  std::uint64_t bytes_per_pair = 0;
  std::uint64_t bytes_per_socket = 0;  // bytes_per_pair / 2
  // "slabinfo" (active objects, needs root) or "meminfo" (Slab pages; undercounts when the
  // caches already had free objects).
  std::string source;
  std::vector<SlabGrowth> caches;  // largest growth first, slabinfo only, median round
  std::string error;               // non-empty: nothing measured, the other fields are unset
  bool ok() const { return error.empty(); }
};

// Opens `pairs` connected loopback pairs (client + accepted socket) `rounds` times, reads
// /proc/slabinfo (or /proc/meminfo Slab) before and after each round and reports the median.
// Every socket is closed with SO_LINGER 0 before returning, so no TIME_WAIT is left behind.
Measurement measure_kernel_bytes_per_socket_pair(int pairs, int rounds = 3);

}  // namespace tcpms::doctor
