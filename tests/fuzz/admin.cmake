# Fuzzer for the admin API's request framer (preset "fuzz", clang): it reads bytes from any
# client that can reach the admin port, before authentication.
target_compile_options(tcpms_admin PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
tcpms_fuzz_target(admin_http_framer_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/admin_http_framer_fuzz.cc
  LIBS tcpms::admin)

# The front door's reader of the answers of the workers' admin APIs (bytes from another
# process).
tcpms_fuzz_target(admin_http_reply_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/admin_http_reply_fuzz.cc
  LIBS tcpms::admin)
