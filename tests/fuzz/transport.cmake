# Transport codecs (preset "fuzz", clang): the WebSocket receiver and handshake parser, and the
# PROXY header parser. The codec libraries are instrumented too, so libFuzzer sees inside them.
target_compile_options(tcpms_ws_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
target_compile_options(tcpms_proxy_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
tcpms_fuzz_target(websocket_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/websocket_fuzz.cc
  LIBS tcpms::ws_codec)
tcpms_fuzz_target(proxy_header_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/proxy_header_fuzz.cc
  LIBS tcpms::proxy_codec)
