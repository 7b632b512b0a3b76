# Micro-benchmarks of the load generator's own hot path (histogram record), so its cost per
# recorded latency stays far below the latencies it measures.
add_executable(benchkit_bench ${CMAKE_CURRENT_LIST_DIR}/benchkit_bench.cc)
target_link_libraries(benchkit_bench PRIVATE tcpms::benchkit benchmark::benchmark)
tcpms_target_defaults(benchkit_bench)
