// What the parent prints and writes at the end: the human summary, the --json document and
// the --report HTML file (benchkit renders both the summary body and the HTML).
//
// Threads: main thread; plain functions.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "benchkit/report.h"
#include "targets.h"

namespace tcpms::benchapp {

// How the run was laid out, reported next to the numbers.
struct RunLayout {
  int processes = 1;
  unsigned threads = 1;
  int64_t nofile = 0;            // RLIMIT_NOFILE soft limit per process
  size_t targets = 0;
  SourcePlan sources;
  nlohmann::json netstat;        // {"before": {...}, "after": {...}} or null
};

// One paragraph: the layout line, the plan warning if any, benchkit's summary.
std::string human_summary(const bench::RunResult& r, const RunLayout& layout);
// The RunResult JSON plus "layout", "netstat" and "server_cost".
nlohmann::json machine_json(const bench::RunResult& r, const RunLayout& layout);
// Writes render_html(r); returns an error message or empty.
std::string write_report(const std::string& path, const bench::RunResult& r);

}  // namespace tcpms::benchapp
