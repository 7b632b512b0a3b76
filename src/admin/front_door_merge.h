// How the front door (front_door.h) turns the answers of several workers into the answer of
// one server: pure functions over the workers' JSON, so each rule is unit-tested on its own.
//
// Thread rules: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admin/worker_calls.h"

namespace tcpms::admin {

// GET /api/v1/stats: numbers are added up (totals, rates, gauges of counts), "loops" are put
// together (their indexes are disjoint), "ready" holds when every worker is ready, "uptime_s"
// is the oldest worker's, and the protocol_stats keys in `same_everywhere` (what every worker
// holds a copy of, such as retained messages) are the largest figure rather than the sum.
// "workers" lists each worker's index, readiness, connections and memory.
// `stats[i]` is worker i's answer, null when it did not answer.
nlohmann::json merge_stats(const std::vector<nlohmann::json>& stats,
                           const std::vector<std::string>& same_everywhere);

// How client pages are ordered: MQTT by client id (cursor: the last id), raw protocols by
// connection position (cursor: "<loop>.<slot>" of the last one).
enum class PageOrder { kById, kByConnection };

// GET /api/v1/clients and /api/v1/sessions: every worker was asked for `limit` rows after the
// same cursor, so the first `limit` of all their rows together are the server's page.
// `key` is "clients" or "sessions".
nlohmann::json merge_pages(const std::vector<nlohmann::json>& pages, const char* key, size_t limit,
                           PageOrder order);

// GET /api/v1/subscriptions: the union, sorted by client id then filter, at most `limit`.
nlohmann::json merge_subscriptions(const std::vector<nlohmann::json>& answers, size_t limit);

// Names the workers whose answer cannot be used: no answer, or a status not in `usable`.
// Adds to `out` "workers_unanswered": [index, ...] and "worker_errors": [{"worker", "status"
// (0: no answer), "error" (the first line of its body, or why there is no answer)}], or
// nothing when every answer was usable. Returns whether any was named.
bool note_unusable(nlohmann::json& out, const std::vector<WorkerReply>& replies,
                   std::initializer_list<int> usable = {200});

}  // namespace tcpms::admin
