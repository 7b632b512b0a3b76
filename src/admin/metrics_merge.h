// The Prometheus text of several worker processes as the text of one server (the front
// door's /metrics, front_door.h). Each family keeps one HELP and one TYPE, in the order the
// families first appear, and its samples become:
//
// - as they are, when they carry a `loop` label: loop indexes are disjoint across workers
//   (worker i numbers its loops from i x threads), so the loop already says the worker;
// - labelled `worker="i"`, for families that describe one process rather than the server's
//   clients (its memory, its worker pool, its links and routing tables to the other
//   workers): `per_worker` names them by prefix;
// - otherwise summed over the workers, sample by sample (same name and labels): counters and
//   gauges of clients, messages, sessions are the server's totals.
//
// Families named by a `skip` prefix are left out (the workers' own admin-API families, which
// count the front door's requests to them, not the operator's).
//
// Thread rules: pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tcpms::admin {

struct MetricsMergeRules {
  std::vector<std::string> per_worker;  // family-name prefixes that get a worker label
  std::vector<std::string> skip;        // family-name prefixes left out
};

// texts[i] is worker i's exposition; an empty text (a worker that did not answer) adds nothing.
std::string merge_metrics(const std::vector<std::string>& texts, const MetricsMergeRules& rules);

}  // namespace tcpms::admin
