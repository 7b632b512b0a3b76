# Session image fuzzer (preset "fuzz", clang): the bytes of a session moving between processes
# (src/broker/session_image.h). The codec file is compiled into the target itself, so it is
# instrumented without instrumenting the whole broker library; the subscription-identifier
# helper it links against lives in the broker library.
tcpms_fuzz_target(session_image_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/session_image_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/broker/session_image.cc
  LIBS tcpms::net tcpms::mqtt_codec)
target_include_directories(session_image_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src
                           ${PROJECT_SOURCE_DIR}/src/proto)
