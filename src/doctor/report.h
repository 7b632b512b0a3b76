// Renders a doctor run as a table for people or as JSON for scripts and tests.
// Thread-safety: pure functions; any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "doctor/apply.h"
#include "doctor/checks.h"
#include "doctor/measure.h"

namespace tcpms::doctor {

struct Report {
  Target target;
  ProcessLimits limits;
  std::vector<Finding> findings;
  std::optional<Measurement> measurement;  // nullopt: not measured (--measure-pairs 0)
  std::optional<ApplyReport> applied;      // nullopt: --apply not given
};

nlohmann::json to_json(const Report& report);
nlohmann::json to_json(const Finding& finding);

// CHECK | VALUE | NEEDED | STATUS | FIX, one row per finding; a multi-line fix continues on
// indented lines under FIX. Then the measurement, worker count and apply results.
std::string render_table(const Report& report);

}  // namespace tcpms::doctor
