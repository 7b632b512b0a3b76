# Routing frame fuzzer (preset "fuzz", clang): every frame between tcpms processes and nodes
# (src/routing/frame.h), decoded as untrusted input. The codec is compiled into the target.
tcpms_fuzz_target(routing_frame_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/routing_frame_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/routing/frame.cc
  LIBS tcpms::net tcpms::mqtt_codec)
target_include_directories(routing_frame_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src
                           ${PROJECT_SOURCE_DIR}/src/proto)
