# Cluster node handover fuzzer (preset "fuzz", clang): the State frame item with which an
# upgraded node goes on as the same node, and the router image inside it
# (src/cluster/continuation.h, src/routing/router_image.h), decoded as untrusted input.
tcpms_fuzz_target(node_handover_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/node_handover_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/cluster/continuation.cc
          ${PROJECT_SOURCE_DIR}/src/routing/router_image.cc
          ${PROJECT_SOURCE_DIR}/src/routing/frame.cc
  LIBS tcpms::net tcpms::mqtt_codec)
target_include_directories(node_handover_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src
                           ${PROJECT_SOURCE_DIR}/src/proto)
