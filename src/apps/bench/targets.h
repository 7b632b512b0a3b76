// Where connections go: target parsing (HOST:PORT and port ranges), source-address lists, and
// the plan that spreads connections over (source, target) pairs so no pair runs out of ports.
//
// Why pairs matter: the kernel picks a local port per 4-tuple, so one (source address, target)
// pair carries at most ip_local_port_range connections (28,232 by default). Binding before
// connect with IP_BIND_ADDRESS_NO_PORT (EventLoop::connect with a source) keeps that budget per
// pair instead of per source address.
//
// Threads: pure functions and plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tcpms/endpoint.h"

namespace tcpms::benchapp {

// Most connections the automatic plan puts on one (source, target) pair. Capacity alone would
// allow about 25,000 (the default 28,232 ephemeral ports, with room for TIME_WAIT leftovers),
// but connect() looks for a free port by probing the ports in turn, each probe a lookup in the
// established table: the fuller the pair, the more probes. At 25,000 per pair that search was
// the largest single cost of a million-client run (a sixth of the box's CPU in perf, charged to
// the bench, taken from the server it measures); at 4,000 almost every first probe succeeds.
// Loopback has 16 million source addresses, so more of them costs nothing.
inline constexpr int64_t kConnectionsPerPair = 4000;

// "127.0.0.1:7000" -> one endpoint; "127.0.0.1:7000-7029" -> 30 endpoints; "[::1]:7000".
std::optional<std::vector<Endpoint>> parse_target(std::string_view text, std::string* error);
// Every --target, expanded, in order.
std::optional<std::vector<Endpoint>> parse_targets(const std::vector<std::string>& texts,
                                                   std::string* error);
// "127.0.0.2-127.0.0.250" (IPv4 range, inclusive), "10.0.0.1,10.0.0.2" or one address. Ports
// are 0 (chosen at connect time).
std::optional<std::vector<Endpoint>> parse_source_ips(std::string_view text, std::string* error);

struct SourcePlan {
  std::vector<Endpoint> sources;  // empty: no bind, the kernel picks the source
  bool automatic = false;         // sources chosen by the plan, not by --source-ips
  int64_t per_pair_max = 0;       // most connections one (source, target) pair carries
  std::string description;        // one line for the summary: what was spread over what
  std::string warning;            // non-empty: a pair is likely to run out of ports
};

// `peak_connections`: most connections open at once over the whole run (all processes).
// `given`: parsed --source-ips (empty: automatic).
SourcePlan plan_sources(const std::vector<Endpoint>& targets, int64_t peak_connections,
                        const std::vector<Endpoint>& given);

// Connection number `index` (global over processes and threads) goes to target index % T and
// source (index / T) % S, so consecutive connections fill every pair evenly.
struct PairChoice {
  size_t target = 0;
  std::optional<size_t> source;
};
PairChoice choose_pair(uint64_t index, size_t target_count, size_t source_count) noexcept;

}  // namespace tcpms::benchapp
