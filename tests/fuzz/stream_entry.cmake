# Cluster stream-entry fuzzer (preset "fuzz", clang): the fields of an entry read from this
# node's Redis stream, and a node's lease value (src/cluster/node_stream.h), parsed as
# untrusted input (anyone who can write to Redis can write them).
tcpms_fuzz_target(stream_entry_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/stream_entry_fuzz.cc
          ${PROJECT_SOURCE_DIR}/src/cluster/node_stream.cc)
target_include_directories(stream_entry_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/src)
