# The FLOOR echo server (one file, no tcpms code): the baseline the engine is measured against.
add_executable(floor_echo_server ${CMAKE_CURRENT_LIST_DIR}/floor_echo_server.cc)
target_link_libraries(floor_echo_server PRIVATE CLI11::CLI11 Threads::Threads)
tcpms_target_defaults(floor_echo_server)
