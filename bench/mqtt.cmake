# MQTT codec micro-benchmarks: the broker's per-message costs (decode PUBLISH, encode the
# per-subscriber PUBLISH header, topic checks).
add_executable(mqtt_codec_bench ${CMAKE_CURRENT_LIST_DIR}/mqtt_codec_bench.cc)
target_link_libraries(mqtt_codec_bench PRIVATE benchmark::benchmark tcpms::mqtt_codec)
tcpms_target_defaults(mqtt_codec_bench)
