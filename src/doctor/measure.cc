#include "doctor/measure.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "doctor/host_view.h"
#include "tcpms/unique_fd.h"

namespace tcpms::doctor {
namespace {

using tcpms::UniqueFd;

// Descriptors left free for the rest of the process (logs, the CLI's own files).
constexpr std::uint64_t kFdMargin = 64;
// Time for RCU-deferred frees of the previous round to land before the next baseline.
constexpr auto kSettle = std::chrono::milliseconds(200);

using SlabSnapshot = std::map<std::string, std::int64_t>;

std::optional<SlabSnapshot> read_slabinfo() {
  std::ifstream in("/proc/slabinfo");
  if (!in) return std::nullopt;
  SlabSnapshot snap;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("slabinfo", 0) == 0) continue;
    std::istringstream fields(line);
    std::string name;
    std::int64_t active = 0;
    std::int64_t total = 0;
    std::int64_t size = 0;
    if (fields >> name >> active >> total >> size) snap[name] = active * size;
  }
  if (snap.empty()) return std::nullopt;
  return snap;
}

// The slab total as one entry, for hosts where /proc/slabinfo is root-only.
std::optional<SlabSnapshot> read_meminfo_slab() {
  auto v = HostView("/", {}).meminfo_bytes("Slab");
  if (!v) return std::nullopt;
  return SlabSnapshot{{"Slab", static_cast<std::int64_t>(*v)}};
}

std::uint64_t open_fd_count() {
  std::error_code ec;
  std::uint64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

void set_linger_zero(int fd) {
  // RST on close: the measurement must not leave thousands of TIME_WAIT sockets behind.
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

struct Pairs {
  UniqueFd listener;
  std::vector<UniqueFd> sockets;
  ~Pairs() {
    for (auto& s : sockets)
      if (s) set_linger_zero(s.get());
  }
};

// Opens `pairs` pairs into `out`. Returns an error text, empty on success.
std::string open_pairs(int pairs, Pairs& out) {
  out.listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!out.listener) return fmt::format("socket: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(out.listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(out.listener.get(), 128) != 0 ||
      ::getsockname(out.listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return fmt::format("loopback listener: {}", std::strerror(errno));
  out.sockets.reserve(static_cast<std::size_t>(pairs) * 2);
  for (int i = 0; i < pairs; ++i) {
    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!client) return fmt::format("socket: {}", std::strerror(errno));
    timeval tv{2, 0};  // bounds a blocking connect
    ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return fmt::format("connect 127.0.0.1:{} (pair {}): {}", ntohs(addr.sin_port), i,
                         std::strerror(errno));
    out.sockets.push_back(std::move(client));
    int fd = -1;
    for (int tries = 0; tries < 20 && fd < 0; ++tries) {
      fd = ::accept4(out.listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) break;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return fmt::format("accept: {}", std::strerror(errno));
      pollfd p{out.listener.get(), POLLIN, 0};
      ::poll(&p, 1, 100);
    }
    if (fd < 0) return "accept: timed out";
    out.sockets.emplace_back(fd);
  }
  return {};
}

struct Round {
  std::int64_t bytes = 0;
  std::vector<SlabGrowth> caches;
};

}  // namespace

Measurement measure_kernel_bytes_per_socket_pair(int pairs, int rounds) {
  Measurement m;
  pairs = std::clamp(pairs, 1, kMaxMeasurePairs);
  rounds = std::clamp(rounds, 1, 9);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  const std::uint64_t used = open_fd_count() + kFdMargin;
  const std::uint64_t soft = static_cast<std::uint64_t>(rl.rlim_cur);
  const std::uint64_t fit = soft > used ? (soft - used) / 2 : 0;
  pairs = static_cast<int>(std::min<std::uint64_t>(static_cast<std::uint64_t>(pairs), fit));
  if (pairs < 50) {
    m.error = fmt::format("RLIMIT_NOFILE {} leaves room for {} pairs; need 50", soft, fit);
    return m;
  }
  const bool slabinfo = read_slabinfo().has_value();
  m.source = slabinfo ? "slabinfo" : "meminfo";
  m.pairs = pairs;

  std::vector<Round> results;
  for (int r = 0; r < rounds; ++r) {
    if (r > 0) std::this_thread::sleep_for(kSettle);
    auto before = slabinfo ? read_slabinfo() : read_meminfo_slab();
    Pairs open;
    if (auto err = open_pairs(pairs, open); !err.empty()) {
      m.error = err;
      return m;
    }
    auto after = slabinfo ? read_slabinfo() : read_meminfo_slab();
    if (!before || !after) {
      m.error = fmt::format("cannot read {}", slabinfo ? "/proc/slabinfo" : "Slab in /proc/meminfo");
      return m;
    }
    Round round;
    for (const auto& [name, bytes] : *after) {
      auto it = before->find(name);
      std::int64_t delta = bytes - (it == before->end() ? 0 : it->second);
      round.bytes += delta;
      if (slabinfo && delta > 0) round.caches.push_back({name, delta});
    }
    results.push_back(std::move(round));
  }
  std::sort(results.begin(), results.end(),
            [](const Round& a, const Round& b) { return a.bytes < b.bytes; });
  Round& median = results[results.size() / 2];
  if (median.bytes <= 0) {
    m.error = fmt::format("slab did not grow ({} bytes) while {} pairs were open", median.bytes,
                          pairs);
    return m;
  }
  m.rounds = rounds;
  m.bytes_per_pair = static_cast<std::uint64_t>(median.bytes) / static_cast<std::uint64_t>(pairs);
  m.bytes_per_socket = m.bytes_per_pair / 2;
  std::sort(median.caches.begin(), median.caches.end(),
            [](const SlabGrowth& a, const SlabGrowth& b) { return a.bytes > b.bytes; });
  // Only caches that grew by at least 8 bytes per pair say something about a socket.
  std::erase_if(median.caches, [&](const SlabGrowth& g) { return g.bytes < 8LL * pairs; });
  m.caches = std::move(median.caches);
  return m;
}

}  // namespace tcpms::doctor
