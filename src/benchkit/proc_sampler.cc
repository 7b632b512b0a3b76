#include "benchkit/proc_sampler.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tcpms::bench {

namespace {

std::optional<std::string> slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

template <typename Int>
std::optional<Int> parse_int(std::string_view text) {
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data()) return std::nullopt;
  return value;
}

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto start = text.find_first_not_of(" \t\n", pos);
    if (start == std::string_view::npos) break;
    const auto end = std::min(text.find_first_of(" \t\n", start), text.size());
    words.push_back(text.substr(start, end - start));
    pos = end;
  }
  return words;
}

// "Name:   1234 kB" lines of /proc/PID/status and /proc/meminfo: the value in bytes.
std::optional<std::uint64_t> kb_field(std::string_view text, std::string_view name) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = std::min(text.find('\n', pos), text.size());
    const auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ':') {
      const auto words = split_spaces(line.substr(name.size() + 1));
      if (words.empty()) return std::nullopt;
      const auto kb = parse_int<std::uint64_t>(words[0]);
      if (!kb) return std::nullopt;
      return *kb * 1024;
    }
  }
  return std::nullopt;
}

}  // namespace

ProcSampler::ProcSampler(std::filesystem::path proc_root, long ticks_per_second)
    : root_(std::move(proc_root)),
      ticks_per_second_(ticks_per_second > 0 ? ticks_per_second : ::sysconf(_SC_CLK_TCK)) {
  if (ticks_per_second_ <= 0) ticks_per_second_ = 100;
}

std::uint64_t ProcSampler::ticks_to_us(std::uint64_t ticks) const {
  return ticks * 1'000'000 / static_cast<std::uint64_t>(ticks_per_second_);
}

std::optional<ProcSampler::StatFields> ProcSampler::read_stat(int pid) const {
  const auto text = slurp(root_ / std::to_string(pid) / "stat");
  if (!text) return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so fields start after the last ')'.
  const auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  const auto words = split_spaces(std::string_view(*text).substr(close + 1));
  // words[0] is field 3 (state); ppid is field 4, utime 14, stime 15 (proc(5), 1-based).
  if (words.size() < 13) return std::nullopt;
  const auto ppid = parse_int<int>(words[1]);
  const auto utime = parse_int<std::uint64_t>(words[11]);
  const auto stime = parse_int<std::uint64_t>(words[12]);
  if (!ppid || !utime || !stime) return std::nullopt;
  return StatFields{*ppid, *utime, *stime};
}

std::optional<ProcessUsage> ProcSampler::read_process(int pid) const {
  const auto stat = read_stat(pid);
  if (!stat) return std::nullopt;
  ProcessUsage usage;
  usage.pid = pid;
  usage.processes = 1;
  usage.cpu_user_us = ticks_to_us(stat->utime_ticks);
  usage.cpu_system_us = ticks_to_us(stat->stime_ticks);
  // Zombies and kernel threads have no VmRSS line: they hold no user memory.
  if (const auto status = slurp(root_ / std::to_string(pid) / "status")) {
    usage.rss_bytes = kb_field(*status, "VmRSS").value_or(0);
  }
  if (const auto rollup = slurp(root_ / std::to_string(pid) / "smaps_rollup")) {
    usage.pss_bytes = kb_field(*rollup, "Pss").value_or(0);
  }
  return usage;
}

std::vector<int> ProcSampler::descendants(int pid) const {
  std::multimap<int, int> children;  // ppid -> pid
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
    const auto child = parse_int<int>(entry.path().filename().string());
    if (!child) continue;
    if (const auto stat = read_stat(*child)) children.emplace(stat->ppid, *child);
  }
  std::vector<int> out;
  std::deque<int> todo{pid};
  while (!todo.empty()) {
    const auto [first, last] = children.equal_range(todo.front());
    todo.pop_front();
    for (auto it = first; it != last; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return out;
}

std::optional<ProcessUsage> ProcSampler::read_tree(int pid) const {
  auto total = read_process(pid);
  if (!total) return std::nullopt;
  for (const int child : descendants(pid)) {
    const auto usage = read_process(child);
    if (!usage) continue;  // exited since the walk
    total->processes += 1;
    total->rss_bytes += usage->rss_bytes;
    total->pss_bytes += usage->pss_bytes;
    total->cpu_user_us += usage->cpu_user_us;
    total->cpu_system_us += usage->cpu_system_us;
  }
  return total;
}

std::optional<ListenDrops> ProcSampler::read_listen_drops() const {
  const auto text = slurp(root_ / "net" / "netstat");
  if (!text) return std::nullopt;
  // Pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: 1 2 ...".
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < text->size();) {
    const auto end = std::min(text->find('\n', pos), text->size());
    lines.push_back(std::string_view(*text).substr(pos, end - pos));
    pos = end + 1;
  }
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    if (!lines[i].starts_with("TcpExt:") || !lines[i + 1].starts_with("TcpExt:")) continue;
    const auto names = split_spaces(lines[i]);
    const auto values = split_spaces(lines[i + 1]);
    if (names.size() != values.size()) return std::nullopt;
    ListenDrops drops;
    for (std::size_t k = 1; k < names.size(); ++k) {
      const auto value = parse_int<std::uint64_t>(values[k]).value_or(0);
      if (names[k] == "ListenOverflows") drops.listen_overflows = value;
      if (names[k] == "ListenDrops") drops.listen_drops = value;
    }
    return drops;
  }
  return std::nullopt;
}

std::optional<SlabMemory> ProcSampler::read_slab() const {
  const auto text = slurp(root_ / "meminfo");
  if (!text) return std::nullopt;
  const auto slab = kb_field(*text, "Slab");
  if (!slab) return std::nullopt;
  return SlabMemory{*slab, kb_field(*text, "SReclaimable").value_or(0),
                    kb_field(*text, "SUnreclaim").value_or(0)};
}

std::optional<ServerSample> ProcSampler::sample(int pid) const {
  ServerSample out;
  out.time_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const auto usage = read_tree(pid);
  if (!usage) return std::nullopt;
  out.usage = *usage;
  out.listen = read_listen_drops().value_or(ListenDrops{});
  out.slab = read_slab().value_or(SlabMemory{});
  return out;
}

// Written out rather than NLOHMANN_DEFINE_TYPE_*: those define inline functions, which other
// translation units could not link against through the declarations in the header.
void to_json(nlohmann::json& j, const ProcessUsage& u) {
  j = {{"pid", u.pid},
       {"processes", u.processes},
       {"rss_bytes", u.rss_bytes},
       {"pss_bytes", u.pss_bytes},
       {"cpu_user_us", u.cpu_user_us},
       {"cpu_system_us", u.cpu_system_us}};
}
void from_json(const nlohmann::json& j, ProcessUsage& u) {
  u.pid = j.value("pid", 0);
  u.processes = j.value("processes", 0);
  u.rss_bytes = j.value("rss_bytes", std::uint64_t{0});
  u.pss_bytes = j.value("pss_bytes", std::uint64_t{0});
  u.cpu_user_us = j.value("cpu_user_us", std::uint64_t{0});
  u.cpu_system_us = j.value("cpu_system_us", std::uint64_t{0});
}

void to_json(nlohmann::json& j, const ListenDrops& d) {
  j = {{"listen_overflows", d.listen_overflows}, {"listen_drops", d.listen_drops}};
}
void from_json(const nlohmann::json& j, ListenDrops& d) {
  d.listen_overflows = j.value("listen_overflows", std::uint64_t{0});
  d.listen_drops = j.value("listen_drops", std::uint64_t{0});
}

void to_json(nlohmann::json& j, const SlabMemory& s) {
  j = {{"slab_bytes", s.slab_bytes},
       {"reclaimable_bytes", s.reclaimable_bytes},
       {"unreclaimable_bytes", s.unreclaimable_bytes}};
}
void from_json(const nlohmann::json& j, SlabMemory& s) {
  s.slab_bytes = j.value("slab_bytes", std::uint64_t{0});
  s.reclaimable_bytes = j.value("reclaimable_bytes", std::uint64_t{0});
  s.unreclaimable_bytes = j.value("unreclaimable_bytes", std::uint64_t{0});
}

void to_json(nlohmann::json& j, const ServerSample& s) {
  j = {{"time_unix_ms", s.time_unix_ms}, {"usage", s.usage}, {"listen", s.listen},
       {"slab", s.slab}};
}
void from_json(const nlohmann::json& j, ServerSample& s) {
  s.time_unix_ms = j.value("time_unix_ms", std::int64_t{0});
  s.usage = j.value("usage", ProcessUsage{});
  s.listen = j.value("listen", ListenDrops{});
  s.slab = j.value("slab", SlabMemory{});
}

}  // namespace tcpms::bench
