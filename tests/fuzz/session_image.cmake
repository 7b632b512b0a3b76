# Session image fuzzer (preset "fuzz", clang): the bytes of a session moving between processes
# (src/broker/session_image.h), built from the store's record codecs. The codec files are
# compiled into the target itself, so they are instrumented without instrumenting the whole
# broker and store libraries.
tcpms_fuzz_target(session_image_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/session_image_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/broker/session_image.cc
          ${PROJECT_SOURCE_DIR}/src/store/wire.cc
          ${PROJECT_SOURCE_DIR}/src/store/session_record.cc
          ${PROJECT_SOURCE_DIR}/src/store/subscription_record.cc
          ${PROJECT_SOURCE_DIR}/src/store/message_record.cc
  LIBS tcpms::net tcpms::mqtt_codec ZLIB::ZLIB)
target_include_directories(session_image_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src)
