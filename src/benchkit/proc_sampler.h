// Reads a server's cost from /proc: CPU time and resident memory of a process and all of its
// descendants (a server may fork workers), plus host-wide listen-queue drops and kernel slab
// memory (where a million sockets' kernel memory shows up).
//
// The /proc root is a parameter so tests can point it at a fake tree. Nothing here is on a hot
// path: the bench samples before and after a run (and perhaps once a second), so failures are
// returned as std::nullopt rather than thrown.
//
// Threads: const methods only; safe to call from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tcpms::bench {

// One process, or a process tree summed (then `processes` > 1).
struct ProcessUsage {
  int pid = 0;
  int processes = 0;
  std::uint64_t rss_bytes = 0;      // VmRSS from /proc/PID/status
  std::uint64_t cpu_user_us = 0;    // utime from /proc/PID/stat
  std::uint64_t cpu_system_us = 0;  // stime from /proc/PID/stat
  // Pss from /proc/PID/smaps_rollup: the process's private pages plus its share of each page
  // it shares (a page mapped by 53 workers counts 1/53 in each). Summed over a process tree
  // it counts every physical page once, where the VmRSS sum counts a shared page (the
  // binary's code, libraries) once per process. 0 where unreadable (another user's process).
  std::uint64_t pss_bytes = 0;

  friend bool operator==(const ProcessUsage&, const ProcessUsage&) = default;
};

// TcpExt counters from /proc/net/netstat: connections the kernel refused because a listen
// queue was full. Cumulative since boot, so compare two samples.
struct ListenDrops {
  std::uint64_t listen_overflows = 0;
  std::uint64_t listen_drops = 0;

  friend bool operator==(const ListenDrops&, const ListenDrops&) = default;
};

// From /proc/meminfo: kernel slab memory, which grows with socket count.
struct SlabMemory {
  std::uint64_t slab_bytes = 0;
  std::uint64_t reclaimable_bytes = 0;
  std::uint64_t unreclaimable_bytes = 0;

  friend bool operator==(const SlabMemory&, const SlabMemory&) = default;
};

// Everything sampled at one moment; what RunResult keeps before and after a run.
struct ServerSample {
  std::int64_t time_unix_ms = 0;
  ProcessUsage usage;  // the server process and its descendants
  ListenDrops listen;
  SlabMemory slab;

  friend bool operator==(const ServerSample&, const ServerSample&) = default;
};

class ProcSampler {
 public:
  // ticks_per_second <= 0 means sysconf(_SC_CLK_TCK).
  explicit ProcSampler(std::filesystem::path proc_root = "/proc", long ticks_per_second = 0);

  // One process; nullopt if it does not exist (or exited while being read).
  std::optional<ProcessUsage> read_process(int pid) const;
  // Every live descendant of `pid` (children, grandchildren...), found by walking the ppid
  // field of each /proc/N/stat. Not including `pid` itself.
  std::vector<int> descendants(int pid) const;
  // `pid` plus all of its descendants, summed. nullopt if `pid` does not exist.
  std::optional<ProcessUsage> read_tree(int pid) const;

  std::optional<ListenDrops> read_listen_drops() const;
  std::optional<SlabMemory> read_slab() const;

  // read_tree(pid) plus the host counters (left at 0 where unreadable), stamped with the
  // wall-clock time. nullopt if `pid` does not exist.
  std::optional<ServerSample> sample(int pid) const;

 private:
  struct StatFields {
    int ppid = 0;
    std::uint64_t utime_ticks = 0;
    std::uint64_t stime_ticks = 0;
  };
  std::optional<StatFields> read_stat(int pid) const;
  std::uint64_t ticks_to_us(std::uint64_t ticks) const;

  std::filesystem::path root_;
  long ticks_per_second_;
};

void to_json(nlohmann::json& j, const ProcessUsage& u);
void from_json(const nlohmann::json& j, ProcessUsage& u);
void to_json(nlohmann::json& j, const ListenDrops& d);
void from_json(const nlohmann::json& j, ListenDrops& d);
void to_json(nlohmann::json& j, const SlabMemory& s);
void from_json(const nlohmann::json& j, SlabMemory& s);
void to_json(nlohmann::json& j, const ServerSample& s);
void from_json(const nlohmann::json& j, ServerSample& s);

}  // namespace tcpms::bench
