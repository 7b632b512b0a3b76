# Fuzzers for the auth parsers (preset "fuzz", clang): ACL file text and password file text,
# both operator input read at start-up and on SIGHUP. The auth library is instrumented too.
target_compile_options(tcpms_auth PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
tcpms_fuzz_target(acl_parser_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/acl_parser_fuzz.cc
  LIBS tcpms::auth)
tcpms_fuzz_target(password_file_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/password_file_fuzz.cc
  LIBS tcpms::auth)
