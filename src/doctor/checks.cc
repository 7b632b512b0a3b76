#include "doctor/checks.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

namespace tcpms::doctor {
namespace {

// Headroom the rest of the system keeps in fs.file-max beyond our sockets.
constexpr std::uint64_t kSystemFdHeadroom = 65536;
// Largest accept backlog the kernel honours (listen() clamps to somaxconn; 65535 fits every
// kernel, older ones stored it in 16 bits).
constexpr std::uint64_t kMaxBacklog = 65535;
// Churn: FIN_WAIT_2 orphans hold memory this long after a mass disconnect.
constexpr std::uint64_t kMaxFinTimeoutS = 30;
// Below this many connections a reconnect wave fits the defaults (60 s FIN_WAIT_2, TIME_WAIT
// reuse on loopback only), so the churn checks only report.
constexpr std::uint64_t kChurnMinConnections = 10000;
// Ephemeral range suggested to clients: leaves 1024-10239 to listeners (reserve listener ports
// inside it with net.ipv4.ip_local_reserved_ports).
constexpr std::uint64_t kPortRangeLow = 10240;
constexpr std::uint64_t kPortRangeHigh = 65535;

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return b == 0 ? a : (a + b - 1) / b; }

std::uint64_t round_up_pow2(std::uint64_t v) {
  std::uint64_t p = 1;
  while (p < v && p < (std::uint64_t{1} << 62)) p <<= 1;
  return p;
}

std::string format_bytes(std::uint64_t bytes) {
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  constexpr double kMiB = 1024.0 * 1024;
  if (bytes >= 1024ULL * 1024 * 1024) return fmt::format("{:.1f} GiB", bytes / kGiB);
  if (bytes >= 1024ULL * 1024) return fmt::format("{:.1f} MiB", bytes / kMiB);
  return fmt::format("{} KiB", bytes / 1024);
}

std::string format_limit(std::uint64_t v) {
  return v == std::numeric_limits<std::uint64_t>::max() ? "unlimited" : std::to_string(v);
}

std::uint64_t page_size() {
  long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<std::uint64_t>(p) : 4096;
}

bool serves(Role r) { return r != Role::client; }
bool connects(Role r) { return r != Role::server; }

// Sockets the host holds: both ends live here when the client runs on the same box.
std::uint64_t host_sockets(const Target& t) {
  return t.role == Role::both ? 2 * t.connections : t.connections;
}

std::uint64_t fds_per_process(const Target& t) { return t.connections + t.fd_reserve; }

Finding unreadable(std::string name, std::string_view what, std::string needed) {
  return Finding{std::move(name), fmt::format("unknown (cannot read {})", what),
                 std::move(needed), Severity::warn, "", "", "", {}};
}

// A sysctl that must be at least `needed`; below it is `below`, and the fix writes `fix_value`.
Finding at_least(const HostView& host, std::string_view key, std::uint64_t needed,
                 std::uint64_t fix_value, Severity below) {
  std::string name(key);
  auto v = host.sysctl_value(key);
  if (!v) return unreadable(name, HostView::sysctl_path(key), fmt::format(">= {}", needed));
  Finding f{name, std::to_string(*v), fmt::format(">= {}", needed), Severity::ok, "", "", "", {*v}};
  if (*v < needed) {
    f.severity = below;
    f.sysctl_key = name;
    f.sysctl_value = std::to_string(fix_value);
    f.fix = fmt::format("sysctl -w {}={}", key, fix_value);
  }
  return f;
}

Finding check_nofile(const HostView& host, const Target& t) {
  const ProcessLimits& l = host.limits();
  const std::uint64_t need = fds_per_process(t);
  const std::uint64_t want = round_up_pow2(need);
  Finding f{"RLIMIT_NOFILE",
            fmt::format("soft {} hard {}, raise hard: {}", format_limit(l.nofile_soft),
                        format_limit(l.nofile_hard),
                        l.can_raise_hard ? "yes" : "no (no CAP_SYS_RESOURCE)"),
            fmt::format(">= {} per process ({} + {} reserve)", need, t.connections, t.fd_reserve),
            Severity::ok, "", "", "", {l.nofile_soft, l.nofile_hard}};
  if (l.nofile_soft >= need) return f;
  if (l.nofile_hard >= need) {
    f.severity = Severity::warn;
    f.fix = fmt::format(
        "soft below hard: the process may raise it (tcpms-server does at start-up); "
        "shell: ulimit -n {}\nsystemd: LimitNOFILE={}", need, want);
    return f;
  }
  const std::uint64_t per_worker = l.nofile_hard > t.fd_reserve ? l.nofile_hard - t.fd_reserve : 0;
  const std::string limits_lines = fmt::format(
      "systemd: LimitNOFILE={0} in [Service] (deploy/tcpms.service)\n"
      "/etc/security/limits.d/tcpms.conf: tcpms - nofile {0}\n"
      "container: docker run --ulimit nofile={0}:{0}", want);
  if (l.can_raise_hard) {
    // Root may raise the hard limit up to fs.nr_open; the nr_open row says if that is enough.
    f.severity = Severity::warn;
    f.fix = fmt::format("hard below need, but this process may raise it (up to fs.nr_open)\n{}",
                        limits_lines);
    return f;
  }
  f.severity = Severity::fail;
  f.fix = fmt::format("{}\nor run {} worker processes of at most {} connections each", limits_lines,
                      processes_needed(l, t), per_worker);
  return f;
}

Finding check_port_range(const HostView& host, const Target& t) {
  const std::string key = "net.ipv4.ip_local_port_range";
  auto v = host.sysctl_values(key);
  if (!v || v->size() != 2) return unreadable(key, HostView::sysctl_path(key), "");
  const std::uint64_t lo = (*v)[0];
  const std::uint64_t hi = (*v)[1];
  const std::uint64_t ports = hi >= lo ? hi - lo + 1 : 0;
  const std::uint64_t pairs = std::max<std::uint64_t>(1, t.source_addresses * t.server_ports);
  // Each (source address, server address:port) pair can use every ephemeral port once.
  const std::uint64_t pairs_needed = ceil_div(t.connections, std::max<std::uint64_t>(ports, 1));
  Finding f{key,
            fmt::format("{}-{} ({} ports) x {} source addr x {} server port", lo, hi, ports,
                        t.source_addresses, t.server_ports),
            fmt::format("{} source addrs x server ports at this range", pairs_needed),
            Severity::ok, "", "", "", {lo, hi}};
  if (pairs >= pairs_needed) return f;
  f.severity = Severity::warn;
  if (lo > kPortRangeLow || hi < kPortRangeHigh) {
    const std::uint64_t new_lo = std::min(lo, kPortRangeLow);
    const std::uint64_t new_hi = std::max(hi, kPortRangeHigh);
    const std::uint64_t wide_pairs = ceil_div(t.connections, new_hi - new_lo + 1);
    f.sysctl_key = key;
    f.sysctl_value = fmt::format("{} {}", new_lo, new_hi);
    f.fix = fmt::format(
        "sysctl -w \"{0}={1} {2}\"\nthen connect from {3} source addresses (127.0.0.1-127.0.0.{3} "
        "on loopback) or to {3} server ports",
        key, new_lo, new_hi, wide_pairs);
  } else {
    f.fix = fmt::format(
        "connect from {0} source addresses (127.0.0.1-127.0.0.{0} on loopback) or to {0} server "
        "ports",
        pairs_needed);
  }
  return f;
}

Finding check_tcp_mem(const HostView& host, const Target& t) {
  const std::string key = "net.ipv4.tcp_mem";
  const std::uint64_t page = page_size();
  // A socket holding any queued data is charged at least one page; assume each connection has
  // one small message in flight at once (a broadcast to all).
  const std::uint64_t need_pages = host_sockets(t);
  auto v = host.sysctl_values(key);
  if (!v || v->size() != 3)
    return unreadable(key, HostView::sysctl_path(key), fmt::format("max >= {} pages", need_pages));
  Finding f{key,
            fmt::format("{} {} {} pages (max {})", (*v)[0], (*v)[1], (*v)[2],
                        format_bytes((*v)[2] * page)),
            fmt::format("max >= {} pages ({}: one page per socket with data queued)", need_pages,
                        format_bytes(need_pages * page)),
            Severity::ok, "", "", "", *v};
  if ((*v)[2] >= need_pages) return f;
  f.severity = Severity::warn;
  const std::uint64_t lo = std::max((*v)[0], need_pages / 2);
  const std::uint64_t mid = std::max((*v)[1], need_pages / 4 * 3);
  const std::uint64_t hi = std::max((*v)[2], need_pages);
  f.sysctl_key = key;
  f.sysctl_value = fmt::format("{} {} {}", lo, mid, hi);
  f.fix = fmt::format("sysctl -w \"{}={}\"", key, f.sysctl_value);
  return f;
}

Finding check_memory(const HostView& host, const Target& t) {
  const std::uint64_t sockets = host_sockets(t);
  const std::uint64_t per_socket = t.kernel_bytes_per_socket.value_or(kDefaultKernelBytesPerSocket);
  const std::uint64_t socket_bytes = sockets * per_socket;
  const std::uint64_t buffer_bytes = sockets * page_size();
  const std::string needed =
      fmt::format(">= {} ({} sockets x {} B {} + {} one page each)",
                  format_bytes(socket_bytes + buffer_bytes), sockets, per_socket,
                  t.kernel_bytes_per_socket ? "measured" : "default", format_bytes(buffer_bytes));
  auto avail = host.meminfo_bytes("MemAvailable");
  if (!avail) return unreadable("MemAvailable", "proc/meminfo", needed);
  Finding f{"MemAvailable", format_bytes(*avail), needed, Severity::ok, "", "", "", {*avail}};
  if (*avail >= socket_bytes + buffer_bytes) return f;
  f.severity = *avail < socket_bytes ? Severity::fail : Severity::warn;
  f.fix = fmt::format("add memory, or spread the connections over {} hosts",
                      ceil_div(socket_bytes + buffer_bytes, std::max<std::uint64_t>(*avail, 1)));
  return f;
}

Finding check_conntrack(const HostView& host, const Target& t) {
  const std::string key = "net.netfilter.nf_conntrack_max";
  // Entries outlive the connection (TIME_WAIT is tracked for 120 s), so churn needs headroom.
  const std::uint64_t need = t.connections + t.connections / 4;
  auto max = host.sysctl_value(key);
  if (!max) {
    return Finding{key, "conntrack not loaded", fmt::format(">= {} if loaded", need),
                   Severity::ok, "", "", "", {}};
  }
  auto count = host.sysctl_value("net.netfilter.nf_conntrack_count");
  auto hashsize = host.read_file("sys/module/nf_conntrack/parameters/hashsize");
  std::string value = fmt::format("{} (tracking {}", *max, count ? std::to_string(*count) : "?");
  if (hashsize) {
    std::string h = *hashsize;
    while (!h.empty() && (h.back() == '\n' || h.back() == ' ')) h.pop_back();
    value += fmt::format(", hashsize {}", h);
  }
  value += ")";
  Finding f{key, value, fmt::format(">= {} (N + 25% for TIME_WAIT)", need), Severity::ok, "", "",
            "", {*max}};
  if (count) f.observed.push_back(*count);
  if (*max >= need) return f;
  // Loaded but tracking nothing: no rule uses it yet, so nothing is dropped today.
  f.severity = count && *count > 0 ? Severity::fail : Severity::warn;
  const std::uint64_t want = round_up_pow2(need);
  f.sysctl_key = key;
  f.sysctl_value = std::to_string(want);
  f.fix = fmt::format(
      "sysctl -w {}={}\necho {} > /sys/module/nf_conntrack/parameters/hashsize\n"
      "or skip tracking the port: iptables -t raw -A PREROUTING -p tcp --dport PORT -j NOTRACK",
      key, want, want / 4);
  return f;
}

Finding check_tw_reuse(const HostView& host, const Target& t) {
  const std::string key = "net.ipv4.tcp_tw_reuse";
  auto v = host.sysctl_value(key);
  // 2 (the default since 4.19) reuses TIME_WAIT ports for loopback only; enough when both ends
  // are on this host.
  const bool loopback_ok = t.role == Role::both;
  const bool churn = t.connections >= kChurnMinConnections;
  const std::string needed = !churn       ? fmt::format("any below {} connections", kChurnMinConnections)
                             : loopback_ok ? "1, or 2 (loopback only)"
                                           : "1";
  if (!v) return unreadable(key, HostView::sysctl_path(key), needed);
  Finding f{key, std::to_string(*v), needed, Severity::ok, "", "", "", {*v}};
  if (!churn || *v == 1 || (loopback_ok && *v == 2)) return f;
  f.severity = Severity::warn;
  f.sysctl_key = key;
  f.sysctl_value = "1";
  f.fix = fmt::format("sysctl -w {}=1", key);
  return f;
}

Finding check_fin_timeout(const HostView& host, const Target& t) {
  const std::string key = "net.ipv4.tcp_fin_timeout";
  auto v = host.sysctl_value(key);
  const bool churn = t.connections >= kChurnMinConnections;
  const std::string needed = churn ? fmt::format("<= {} s", kMaxFinTimeoutS)
                                   : fmt::format("any below {} connections", kChurnMinConnections);
  if (!v) return unreadable(key, HostView::sysctl_path(key), needed);
  Finding f{key, fmt::format("{} s", *v), needed, Severity::ok, "", "", "", {*v}};
  if (!churn || *v <= kMaxFinTimeoutS) return f;
  f.severity = Severity::warn;
  f.sysctl_key = key;
  f.sysctl_value = std::to_string(kMaxFinTimeoutS);
  f.fix = fmt::format("sysctl -w {}={}", key, kMaxFinTimeoutS);
  return f;
}

Finding check_listen_counter(const HostView& host, std::string_view counter) {
  std::string name = fmt::format("TcpExt.{}", counter);
  auto v = host.netstat_counter("TcpExt", counter);
  if (!v) return unreadable(name, "proc/net/netstat", "0");
  Finding f{name, fmt::format("{} since boot", *v), "0", Severity::ok, "", "", "", {*v}};
  if (*v == 0) return f;
  f.severity = Severity::warn;
  f.fix =
      "accept queue overflowed: raise net.core.somaxconn and the listener backlog, accept "
      "faster; compare the counter before and after a load test";
  return f;
}

}  // namespace

std::string_view to_string(Role role) {
  switch (role) {
    case Role::server: return "server";
    case Role::client: return "client";
    case Role::both: return "both";
  }
  return "?";
}

std::string_view to_string(Severity severity) {
  switch (severity) {
    case Severity::ok: return "OK";
    case Severity::warn: return "WARN";
    case Severity::fail: return "FAIL";
  }
  return "?";
}

std::optional<Role> parse_role(std::string_view text) {
  if (text == "server") return Role::server;
  if (text == "client") return Role::client;
  if (text == "both") return Role::both;
  return std::nullopt;
}

std::uint64_t processes_needed(const ProcessLimits& limits, const Target& t) {
  const std::uint64_t need = fds_per_process(t);
  if (limits.nofile_hard >= need || limits.can_raise_hard) return 1;
  const std::uint64_t per_worker =
      std::max<std::uint64_t>(1, limits.nofile_hard > t.fd_reserve ? limits.nofile_hard - t.fd_reserve : 1);
  const std::uint64_t per_side = ceil_div(t.connections, per_worker);
  return t.role == Role::both ? 2 * per_side : per_side;
}

std::vector<Finding> run_checks(const HostView& host, const Target& t) {
  std::vector<Finding> out;
  const std::uint64_t per_process = fds_per_process(t);
  out.push_back(check_nofile(host, t));
  out.push_back(at_least(host, "fs.nr_open", per_process, round_up_pow2(per_process),
                         Severity::fail));
  const std::uint64_t files = host_sockets(t) + kSystemFdHeadroom;
  out.push_back(at_least(host, "fs.file-max", files, round_up_pow2(files), Severity::fail));
  if (serves(t.role)) {
    // A reconnect storm after a restart: let a sixteenth of the clients queue at once.
    const std::uint64_t backlog = std::clamp<std::uint64_t>(t.connections / 16, 4096, kMaxBacklog);
    out.push_back(at_least(host, "net.core.somaxconn", backlog, kMaxBacklog, Severity::warn));
    out.push_back(
        at_least(host, "net.ipv4.tcp_max_syn_backlog", backlog, kMaxBacklog, Severity::warn));
  }
  const std::uint64_t netdev = std::clamp<std::uint64_t>(t.connections / 64, 1000, 65536);
  out.push_back(at_least(host, "net.core.netdev_max_backlog", netdev, round_up_pow2(netdev),
                         Severity::warn));
  if (connects(t.role)) out.push_back(check_port_range(host, t));
  out.push_back(check_tcp_mem(host, t));
  out.push_back(check_memory(host, t));
  out.push_back(check_conntrack(host, t));
  if (connects(t.role)) out.push_back(check_tw_reuse(host, t));
  out.push_back(check_fin_timeout(host, t));
  if (serves(t.role)) {
    out.push_back(check_listen_counter(host, "ListenOverflows"));
    out.push_back(check_listen_counter(host, "ListenDrops"));
  }
  return out;
}

Severity worst(const std::vector<Finding>& findings) {
  Severity s = Severity::ok;
  for (const auto& f : findings) s = std::max(s, f.severity);
  return s;
}

int exit_code(Severity severity) { return static_cast<int>(severity); }

std::vector<std::string> shortfall_messages(const std::vector<Finding>& findings) {
  std::vector<std::string> out;
  for (const auto& f : findings) {
    if (f.severity == Severity::ok) continue;
    std::string fix = f.fix;
    std::replace(fix.begin(), fix.end(), '\n', ';');
    out.push_back(fmt::format("{}: {} is {}, needs {}{}{}", to_string(f.severity), f.name,
                              f.value, f.needed, fix.empty() ? "" : "; fix: ", fix));
  }
  return out;
}

std::vector<std::string> startup_shortfalls(std::uint64_t max_connections, Role role) {
  Target t;
  t.connections = max_connections;
  t.role = role;
  return shortfall_messages(run_checks(HostView::system(), t));
}

}  // namespace tcpms::doctor
