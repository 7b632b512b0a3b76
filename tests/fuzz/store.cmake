# Store record fuzzers (preset "fuzz", clang): one target per record codec of src/store. The
# codec files are compiled into each target, so they are instrumented without instrumenting
# the whole store library.
foreach(record session_record subscription_record message_body message_ref retained_record will_record)
  tcpms_fuzz_target(${record}_fuzz
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/store_record_fuzz.cc
            ${PROJECT_SOURCE_DIR}/src/store/wire.cc
            ${PROJECT_SOURCE_DIR}/src/store/session_record.cc
            ${PROJECT_SOURCE_DIR}/src/store/subscription_record.cc
            ${PROJECT_SOURCE_DIR}/src/store/message_record.cc
            ${PROJECT_SOURCE_DIR}/src/store/retained_record.cc
            ${PROJECT_SOURCE_DIR}/src/store/will_record.cc
    LIBS tcpms::net tcpms::mqtt_codec ZLIB::ZLIB)
  target_compile_definitions(${record}_fuzz PRIVATE TCPMS_RECORD=${record})
  target_include_directories(${record}_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src)
endforeach()
