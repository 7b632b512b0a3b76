// StatsSampler: the JSON summary behind GET /api/v1/stats and the dashboard. Totals are read
// from the loops' counters (relaxed atomics, as /metrics does); rates are differences against
// the previous sample at least kMinWindow old, so several dashboards polling at once share one
// window instead of each getting noise from tiny intervals.
//
// Thread rules: any thread (a mutex guards the previous sample).
#pragma once

#include <chrono>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "admin/push_target.h"
#include "tcpms/server.h"

namespace tcpms::admin {

class StatsSampler {
 public:
  static constexpr std::chrono::milliseconds kMinWindow{500};

  explicit StatsSampler(Server& server);
  nlohmann::json sample(PushTarget& target, bool ready);

 private:
  struct Totals {
    std::chrono::steady_clock::time_point at;
    uint64_t accepted = 0, bytes_in = 0, bytes_out = 0;
    uint64_t messages_in = 0, messages_out = 0;
    std::vector<uint64_t> busy_ns;  // per loop
  };
  struct Rates {
    double accepted = 0, bytes_in = 0, bytes_out = 0, messages_in = 0, messages_out = 0;
    std::vector<double> busy;  // fraction of wall time, per loop
  };

  Server& server_;
  std::chrono::steady_clock::time_point started_;
  std::mutex mu_;
  bool have_base_ = false;
  Totals base_;
  Rates rates_;
};

}  // namespace tcpms::admin
