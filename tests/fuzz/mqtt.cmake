# MQTT decoder fuzzer (preset "fuzz", clang). The codec library itself is instrumented too, so
# libFuzzer sees coverage inside the decoders and not only in the harness.
target_compile_options(tcpms_mqtt_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
tcpms_fuzz_target(mqtt_decoder_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mqtt_decoder_fuzz.cc
  LIBS tcpms::mqtt_codec)
