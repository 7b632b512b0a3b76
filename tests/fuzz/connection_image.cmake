# Connection image fuzzer (preset "fuzz", clang): an MQTT connection's state handed to the
# process replacing this one (src/broker/connection_image.h). Both codec files are compiled in,
# so the session image it carries is fuzzed through it too.
tcpms_fuzz_target(connection_image_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/connection_image_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/broker/connection_image.cc
          ${PROJECT_SOURCE_DIR}/src/broker/session_image.cc
  LIBS tcpms::net tcpms::mqtt_codec)
target_include_directories(connection_image_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src
                           ${PROJECT_SOURCE_DIR}/src/proto)
