// Prometheus text exposition of the engine's counters. Reads the loops' relaxed atomics from
// the admin thread; never touches loop state otherwise.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tcpms/server.h"

namespace tcpms::admin {

// Extra metric families contributed by protocols (MQTT, cluster): each appends complete
// "# HELP/# TYPE/sample" blocks to `out`.
using MetricsSource = std::function<void(std::string& out)>;

std::string render_metrics(Server& server, const std::vector<MetricsSource>& extra);

// Process RSS in bytes from /proc/self/statm.
size_t process_rss_bytes();

}  // namespace tcpms::admin
