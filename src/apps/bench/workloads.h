// The built-in workloads (one file each) and helpers they share. Each has its make_* here and a
// line in workload_registry.cc.
#pragma once

#include <memory>
#include <string_view>

#include "workload.h"

namespace tcpms::benchapp {

std::unique_ptr<Workload> make_connect_workload();
std::unique_ptr<Workload> make_echo_workload();
std::unique_ptr<Workload> make_churn_workload();
std::unique_ptr<Workload> make_mqtt_conn_workload();
std::unique_ptr<Workload> make_mqtt_fanout_workload();
std::unique_ptr<Workload> make_mqtt_p2p_workload();
std::unique_ptr<Workload> make_mqtt_reach_workload();
std::unique_ptr<Workload> make_mqtt_storm_workload();

// Adds counter `rate_name` = `counter` / the max of `span_histogram` (a per-loop phase length,
// so its max is the run's). False when that histogram is missing or empty.
bool add_per_second(bench::RunResult& r, std::string_view span_histogram, std::string_view counter,
                    std::string_view rate_name);
// Adds time_to_establish_ms and connects_per_s from the time_to_establish histogram.
void finalize_connect_rate(bench::RunResult& r);

}  // namespace tcpms::benchapp
