#include "targets.h"

#include <arpa/inet.h>

#include <charconv>

#include <fmt/format.h>

namespace tcpms::benchapp {
namespace {

std::optional<uint32_t> parse_port(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return v;
}

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  std::string text(s);
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

Endpoint ipv4_endpoint(uint32_t host_order) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(host_order);
  return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
}

std::string host_text(const Endpoint& e) {
  std::string s = e.to_string();
  return s.substr(0, s.rfind(':'));
}

bool is_ipv4_loopback(const Endpoint& e) {
  return e.family() == AF_INET && e.is_loopback();
}

}  // namespace

std::optional<std::vector<Endpoint>> parse_target(std::string_view text, std::string* error) {
  const size_t colon = text.rfind(':');
  const size_t dash = text.find('-', colon == std::string_view::npos ? 0 : colon);
  if (colon == std::string_view::npos || dash == std::string_view::npos) {
    auto one = Endpoint::parse(text, error);
    if (!one) return std::nullopt;
    if (one->port() == 0) {
      if (error) *error = fmt::format("{}: the target needs a port", text);
      return std::nullopt;
    }
    return std::vector<Endpoint>{*one};
  }
  auto first = parse_port(text.substr(colon + 1, dash - colon - 1));
  auto last = parse_port(text.substr(dash + 1));
  if (!first || !last || *last < *first) {
    if (error) *error = fmt::format("{}: a port range is PORT-PORT, low to high, within 1-65535", text);
    return std::nullopt;
  }
  auto base = Endpoint::parse(fmt::format("{}:{}", text.substr(0, colon), *first), error);
  if (!base) return std::nullopt;
  std::vector<Endpoint> out;
  out.reserve(*last - *first + 1);
  for (uint32_t port = *first; port <= *last; ++port) {
    Endpoint e = *base;
    e.set_port(static_cast<uint16_t>(port));
    out.push_back(e);
  }
  return out;
}

std::optional<std::vector<Endpoint>> parse_targets(const std::vector<std::string>& texts,
                                                   std::string* error) {
  std::vector<Endpoint> out;
  for (const auto& t : texts) {
    auto some = parse_target(t, error);
    if (!some) return std::nullopt;
    out.insert(out.end(), some->begin(), some->end());
  }
  if (out.empty()) {
    if (error) *error = "no --target given";
    return std::nullopt;
  }
  return out;
}

std::optional<std::vector<Endpoint>> parse_source_ips(std::string_view text, std::string* error) {
  std::vector<Endpoint> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    if (size_t dash = item.find('-'); dash != std::string_view::npos) {
      auto lo = parse_ipv4(item.substr(0, dash));
      auto hi = parse_ipv4(item.substr(dash + 1));
      if (!lo || !hi || *hi < *lo || *hi - *lo >= (1u << 20)) {
        if (error) *error = fmt::format("{}: a source range is IPv4-IPv4, low to high", item);
        return std::nullopt;
      }
      for (uint64_t a = *lo; a <= *hi; ++a) out.push_back(ipv4_endpoint(static_cast<uint32_t>(a)));
      continue;
    }
    const bool v6 = item.find(':') != std::string_view::npos;
    auto one = Endpoint::parse(v6 ? fmt::format("[{}]:0", item) : fmt::format("{}:0", item), error);
    if (!one) return std::nullopt;
    out.push_back(*one);
  }
  if (out.empty()) {
    if (error) *error = "--source-ips names no address";
    return std::nullopt;
  }
  return out;
}

SourcePlan plan_sources(const std::vector<Endpoint>& targets, int64_t peak_connections,
                        const std::vector<Endpoint>& given) {
  SourcePlan plan;
  const int64_t t = static_cast<int64_t>(std::max<size_t>(targets.size(), 1));
  const int64_t per_target = (peak_connections + t - 1) / t;
  if (!given.empty()) {
    plan.sources = given;
    const int64_t s = static_cast<int64_t>(given.size());
    plan.per_pair_max = (per_target + s - 1) / s;
    plan.description = fmt::format("{} connections over {} target{} x {} source address{} (--source-ips)",
                                   peak_connections, t, t == 1 ? "" : "s", s, s == 1 ? "" : "es");
  } else {
    bool all_loopback = true;
    for (const auto& e : targets) all_loopback = all_loopback && is_ipv4_loopback(e);
    const int64_t needed = (per_target + kConnectionsPerPair - 1) / kConnectionsPerPair;
    if (all_loopback && needed > 1) {
      // 127.0.0.1 is left to the kernel's default; the plan starts at 127.0.0.2.
      const uint32_t first = (127u << 24) | 2u;
      for (int64_t i = 0; i < needed; ++i) plan.sources.push_back(ipv4_endpoint(first + static_cast<uint32_t>(i)));
      plan.automatic = true;
      plan.per_pair_max = (per_target + needed - 1) / needed;
      plan.description = fmt::format(
          "{} connections over {} target{} x {} source addresses ({}-{}, automatic)", peak_connections, t,
          t == 1 ? "" : "s", needed, host_text(plan.sources.front()), host_text(plan.sources.back()));
    } else {
      plan.per_pair_max = per_target;
      plan.description = fmt::format("{} connections over {} target{}, source address chosen by the kernel",
                                     peak_connections, t, t == 1 ? "" : "s");
    }
  }
  if (plan.per_pair_max > 28000) {
    plan.warning = fmt::format(
        "up to {} connections per (source, target) pair, beyond the 28,232 ephemeral ports of "
        "the default ip_local_port_range: add targets (a port range) or --source-ips",
        plan.per_pair_max);
  }
  return plan;
}

PairChoice choose_pair(uint64_t index, size_t target_count, size_t source_count) noexcept {
  PairChoice c;
  if (target_count == 0) return c;
  c.target = index % target_count;
  if (source_count > 0) c.source = (index / target_count) % source_count;
  return c;
}

}  // namespace tcpms::benchapp
