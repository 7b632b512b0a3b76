#include "doctor/host_view.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

#include "tcpms/unique_fd.h"

namespace tcpms::doctor {
namespace {

constexpr int kCapSysResource = 24;  // linux/capability.h

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end == text.data()) return std::nullopt;
  return v;
}

std::uint64_t rlim_to_u64(rlim_t v) {
  return v == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max()
                            : static_cast<std::uint64_t>(v);
}

bool effective_cap(const std::string& status, int cap) {
  auto pos = status.find("CapEff:");
  if (pos == std::string::npos) return false;
  std::istringstream in(status.substr(pos + 7));
  std::string hex;
  in >> hex;
  std::uint64_t mask = 0;
  auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), mask, 16);
  return ec == std::errc{} && ((mask >> cap) & 1U) != 0;
}

}  // namespace

ProcessLimits current_process_limits() {
  ProcessLimits out;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    out.nofile_soft = rlim_to_u64(rl.rlim_cur);
    out.nofile_hard = rlim_to_u64(rl.rlim_max);
  }
  std::ifstream in("/proc/self/status");
  std::stringstream buf;
  buf << in.rdbuf();
  out.can_raise_hard = effective_cap(buf.str(), kCapSysResource);
  return out;
}

HostView HostView::system() { return HostView("/", current_process_limits()); }

std::string HostView::sysctl_path(std::string_view key) {
  std::string path = "proc/sys/";
  for (char c : key) path.push_back(c == '.' ? '/' : c);
  return path;
}

std::optional<std::string> HostView::read_file(std::string_view relative) const {
  std::ifstream in(root_ / relative);
  if (!in) return std::nullopt;
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return buf.str();
}

bool HostView::exists(std::string_view relative) const {
  std::error_code ec;
  return std::filesystem::exists(root_ / relative, ec);
}

std::optional<std::vector<std::uint64_t>> HostView::sysctl_values(std::string_view key) const {
  auto text = read_file(sysctl_path(key));
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::vector<std::uint64_t> values;
  std::string field;
  while (in >> field) {
    auto v = parse_u64(field);
    if (!v) return std::nullopt;
    values.push_back(*v);
  }
  if (values.empty()) return std::nullopt;
  return values;
}

std::optional<std::uint64_t> HostView::sysctl_value(std::string_view key) const {
  auto values = sysctl_values(key);
  if (!values) return std::nullopt;
  return values->front();
}

int HostView::write_sysctl(std::string_view key, std::string_view value) const {
  // O_TRUNC without O_CREAT: a sysctl that does not exist is an error, never a new file.
  UniqueFd fd(::open((root_ / sysctl_path(key)).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return errno;
  std::string line(value);
  line.push_back('\n');
  ssize_t n = ::write(fd.get(), line.data(), line.size());
  if (n < 0) return errno;
  if (static_cast<std::size_t>(n) != line.size()) return EIO;
  return 0;
}

std::optional<std::uint64_t> HostView::meminfo_bytes(std::string_view field) const {
  auto text = read_file("proc/meminfo");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos || std::string_view(line).substr(0, colon) != field) continue;
    std::istringstream fields(line.substr(colon + 1));
    std::uint64_t kb = 0;
    if (!(fields >> kb)) return std::nullopt;
    return kb * 1024;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> HostView::netstat_counter(std::string_view section,
                                                       std::string_view name) const {
  // proc/net/netstat holds pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: 1 2 ...".
  auto text = read_file("proc/net/netstat");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string header;
  std::string values;
  std::string prefix = std::string(section) + ":";
  while (std::getline(in, header) && std::getline(in, values)) {
    if (header.rfind(prefix, 0) != 0 || values.rfind(prefix, 0) != 0) continue;
    std::istringstream names_in(header.substr(prefix.size()));
    std::istringstream values_in(values.substr(prefix.size()));
    std::string n;
    std::string v;
    while (names_in >> n && values_in >> v) {
      if (n == name) return parse_u64(v);
    }
  }
  return std::nullopt;
}

}  // namespace tcpms::doctor
