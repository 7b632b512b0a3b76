# Upgrade handover fuzzer (preset "fuzz", clang): the frames a running server and its
# replacement exchange (src/proto/handover/handover_frame.h), decoded as untrusted input. The
# codec is compiled into the target itself.
tcpms_fuzz_target(handover_frame_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/handover_frame_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/proto/handover/handover_frame.cc
  LIBS tcpms::net)
target_include_directories(handover_frame_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src
                           ${PROJECT_SOURCE_DIR}/src/proto)
