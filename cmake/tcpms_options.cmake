# Per-target compile settings. Every tcpms target calls tcpms_target_defaults(<target>).
function(tcpms_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
                         -Wno-unused-parameter -Wimplicit-fallthrough)
  if(TCPMS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(TCPMS_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                           -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# A libFuzzer target: clang only, built when TCPMS_FUZZ is ON.
function(tcpms_fuzz_target name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${F_SOURCES})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  # `make fuzz` builds only the `fuzzers` target, not the whole tree a third time.
  if(NOT TARGET fuzzers)
    add_custom_target(fuzzers)
  endif()
  add_dependencies(fuzzers ${name})
endfunction()
