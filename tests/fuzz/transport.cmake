# Transport codecs (preset "fuzz", clang): the WebSocket receiver and handshake parser, the
# PROXY header parser and the TLS 1.3 record codec. The codec libraries are instrumented too, so libFuzzer sees inside them.
target_compile_options(tcpms_ws_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
target_compile_options(tcpms_proxy_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
tcpms_fuzz_target(websocket_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/websocket_fuzz.cc
  LIBS tcpms::ws_codec)
tcpms_fuzz_target(proxy_header_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/proxy_header_fuzz.cc
  LIBS tcpms::proxy_codec)
target_compile_options(tcpms_tls13_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
tcpms_fuzz_target(tls13_record_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tls13_record_fuzz.cc
  LIBS tcpms::tls13_codec)
# A WebSocket receiver's state as the upgrade handover brings it (websocket/handover_state.h),
# imported, then received on.
tcpms_fuzz_target(websocket_handover_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/websocket_handover_fuzz.cc
  LIBS tcpms::ws_codec)
